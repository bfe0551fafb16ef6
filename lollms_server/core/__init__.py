"""The domain of lollms_server: configuration, bindings, resources. No HTTP in here."""
