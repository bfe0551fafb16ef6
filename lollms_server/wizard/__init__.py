"""The configuration wizard and binding-instance management: presets kept as data (``presets.yaml``), questions
generated from the schemas (``MAIN_SCHEMA`` and each binding card's ``instance_schema``), and a plan held in
memory until it is saved."""
