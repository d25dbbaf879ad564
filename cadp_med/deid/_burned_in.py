"""Flag instances whose pixels probably carry burned-in text (PS3.15 E.3.1 context).

Header de-identification cannot clean pixels. These rules say when an instance should be
quarantined or sent to a pixel cleaner. Reasons never quote header values.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

# Secondary capture image storage SOP classes (PS3.4 B.5): screenshots, scanned documents.
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_BURNED_IN_MODALITIES = {
    "US": "modality US usually carries burned-in text",
    "ES": "modality ES (endoscopy) usually carries burned-in text",
    "XC": "modality XC (external camera) may show the patient or text",
    "DOC": "modality DOC is a scanned document",
}


def burned_in_reason(ds: Dataset) -> str | None:
    """Why ``ds`` may have burned-in identifying text, or None when nothing suggests it."""
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return "BurnedInAnnotation is YES"
    modality = str(ds.get("Modality", "")).upper()
    if modality in _BURNED_IN_MODALITIES:
        return _BURNED_IN_MODALITIES[modality]
    if str(ds.get("SOPClassUID", "")).startswith(_SECONDARY_CAPTURE_PREFIX):
        return "secondary capture SOP class"
    image_type = ds.get("ImageType", [])
    image_type = [image_type] if isinstance(image_type, str) else list(image_type or [])
    if any(str(v).upper() in ("SCREEN SAVE", "SECONDARY CAPTURE") for v in image_type):
        return "ImageType says screen save or secondary capture"
    return None
