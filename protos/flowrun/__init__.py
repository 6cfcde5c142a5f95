"""The flowrun protobuf packages."""
