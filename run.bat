@echo off
REM Installs what is missing (a line per step; the details in install.log), then starts the server.
cd /d "%~dp0"
python install_core.py --ensure --extras llamacpp,speech --webui --first-config -- %* || exit /b 1
venv\Scripts\lollms-server.exe %*
