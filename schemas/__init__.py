"""Data contracts of omnicurate: typed records, the dataset format, JSON and Arrow schemas."""

from schemas.dataset_format import SCHEMA_VERSION
from schemas.validation import SchemaError, from_dict, from_json, to_dict, to_json

__all__ = ["SCHEMA_VERSION", "SchemaError", "from_dict", "from_json", "to_dict", "to_json"]
