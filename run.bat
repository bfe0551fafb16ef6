@echo off
REM Installs what is missing (first run only), then starts the server.
cd /d "%~dp0"
python install_core.py --ensure --extras llamacpp,speech --webui || exit /b 1
venv\Scripts\lollms-server.exe %*
