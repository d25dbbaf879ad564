"""Header de-identification: PS3.15 Annex E, keys, pseudonyms, date shifts and verify.

Public API::

    Option, Profile                  profiles and options (PS3.15 E.2, E.3)
    load_key                         the pseudonymization key
    Deidentifier, DeidResult         apply Table E.1-1 to a dataset
    Pseudonyms                       pseudonyms of an instance
    burned_in_reason                 does the pixel data probably hold text?
    verify_outputs, VerifyReport     search de-identified outputs for leaked identity
    MappingRecorder, read_mapping_csv  original -> pseudonym mapping files
"""

from __future__ import annotations

from cadp_med.deid._burned_in import burned_in_reason
from cadp_med.deid._engine import Deidentifier, DeidResult, Pseudonyms
from cadp_med.deid._keys import load_key
from cadp_med.deid._mapping import MappingRecorder, read_mapping_csv
from cadp_med.deid._profile import Option, Profile
from cadp_med.deid._verify import Leak, VerifyReport, verify_outputs

__all__ = [
    "DeidResult",
    "Deidentifier",
    "Leak",
    "MappingRecorder",
    "Option",
    "Profile",
    "Pseudonyms",
    "VerifyReport",
    "burned_in_reason",
    "load_key",
    "read_mapping_csv",
    "verify_outputs",
]
