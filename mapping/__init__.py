"""The declarative mapping engine: partner payloads ⇄ the national ticket, driven by one YAML spec per adapter.

    spec = spec_for("city-12345-rest")            # or load_spec(path) for an integrator's own file
    result = apply(spec, payload)                  # Mapped | Rejected | Returned; never raises
    callback = reverse(spec, ticket, event)        # the partner's status code and fields
"""

from mapping.engine import Mapped, MappingResult, Noticed, Rejected, Returned, apply
from mapping.errors import MappingError
from mapping.loading import FIXTURES_DIR, SPECS_DIR, default_specs, load_spec, load_specs, spec_for
from mapping.paths import PathSyntaxError
from mapping.payload import PayloadError, decode_body, parse_json_body, xml_records, xml_to_dict
from mapping.reverse import ReverseError, reverse, status_context
from mapping.spec import MappingSpec, SpecError

__all__ = [
    "FIXTURES_DIR",
    "SPECS_DIR",
    "Mapped",
    "MappingError",
    "MappingResult",
    "MappingSpec",
    "Noticed",
    "PathSyntaxError",
    "PayloadError",
    "Rejected",
    "Returned",
    "ReverseError",
    "SpecError",
    "apply",
    "decode_body",
    "default_specs",
    "load_spec",
    "load_specs",
    "parse_json_body",
    "reverse",
    "spec_for",
    "status_context",
    "xml_records",
    "xml_to_dict",
]
