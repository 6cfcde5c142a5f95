"""Generated Python code for the flowrun.v1 protobuf package (see scripts/generate-protos)."""
