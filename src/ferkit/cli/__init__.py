"""The ``ferkit`` command line: ``main`` parses and dispatches; each command's work is in
the workflow that owns it."""
