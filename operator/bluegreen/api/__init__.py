"""The API: the pydantic contract the CRD is generated from."""
