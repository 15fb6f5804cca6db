"""The ``tsuba`` command: one thin module per area (parse, call the library, print)."""
