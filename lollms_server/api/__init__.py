"""The HTTP edge of lollms_server: wire models, routers, auth, error mapping."""
