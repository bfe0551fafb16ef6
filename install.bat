@echo off
REM Creates venv, installs lollms_server and opens the installer menu.
cd /d "%~dp0"
python install_core.py %*
