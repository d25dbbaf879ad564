"""Generate ``cadp_med/model/schemas/regions.json``, the body-region table of the ``region``
condition.

The table maps three kinds of header evidence to one label of a small vocabulary (head,
neck, chest, ..., see ``VOCABULARY``):

``anatomic_codes``
    Anatomic Region Sequence (0008,2218) codes, ``"<scheme>:<code value>"``. The concepts
    are PS3.16 CID 4031 *Common Anatomic Regions* as pydicom ships them
    (``pydicom.sr._cid_dict``, SCT codes), plus SCT 12738006 *Brain*, which CID 4031
    lacks but many headers carry. Each SCT code also appears under its retired SNOMED RT
    (``SRT``) code from pydicom's SNOMED mapping, since older headers use those.
``body_part_examined``
    Body Part Examined (0018,0015) defined terms (PS3.16 Annex L, the "Body Part
    Examined" column of CID 4031), written without spaces as the standard does; a value
    is matched with its spaces and hyphens removed.
``description_words``
    Words of Study Description, Series Description and Protocol Name. Free text is
    PHI-prone: only the derived label ever leaves the function that reads it.

Which region a concept belongs to is the decision written in ``CONCEPT_REGION`` below;
every concept of CID 4031 must be listed (the script stops otherwise), so a new pydicom
edition cannot add codes that silently map nowhere.

Run ``python pipelines/generate_region_table.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
from pydicom.sr._cid_dict import cid_concepts
from pydicom.sr._concepts_dict import concepts
from pydicom.sr._snomed_dict import mapping

OUT = Path(__file__).resolve().parents[1] / "cadp_med" / "model" / "schemas" / "regions.json"

VOCABULARY = [
    "head", "head-neck", "neck", "chest", "abdomen", "pelvis", "trunk", "spine",
    "upper-limb", "lower-limb", "breast", "whole-body", "other",
]  # fmt: skip

# pydicom's CID 4031 concept names (CamelCase) → region.
CONCEPT_REGION = {
    "head": [
        "Head", "Brain", "Skull", "FacialBones", "JawRegion", "Mandible", "Maxilla",
        "MastoidBone", "NasalBone", "OpticCanal", "OrbitalStructure", "Eye", "EyeRegion",
        "ParanasalSinus", "InternalAuditoryCanal", "SellaTurcica", "TemporomandibularJoint",
        "Zygoma",
    ],
    "head-neck": ["HeadAndNeck"],
    "neck": ["Neck", "Larynx", "Trachea", "ParotidGland", "SubmandibularGland"],
    "chest": [
        "Chest", "Mediastinum", "Heart", "ApexOfLung", "Bronchus", "Esophagus", "Rib",
        "Sternum", "Clavicle", "Scapula", "SternoclavicularJoint", "AcromioclavicularJoint",
        "NeckAndChest",
    ],
    "abdomen": [
        "Abdomen", "Stomach", "Duodenum", "Jejunum", "Ileum", "SmallIntestine", "Colon",
        "LargeIntestine", "Gallbladder", "BileDuct", "CommonBileDuct", "BiliaryTract",
        "Pancreas", "PancreaticDuct", "PancreaticDuctAndBileDuctSystems",
        "LiverAndBiliaryStructure",
        "UpperUrinaryTract", "Ureter", "EsophagusStomachAndDuodenum",
    ],
    "pelvis": [
        "Pelvis", "Bladder", "Prostate", "Rectum", "Anus", "Urethra", "Ilium",
        "SacroiliacJoint", "UterusAndFallopianTubes", "Hip", "HipJoint",
    ],
    "trunk": [
        "ChestAndAbdomen", "AbdomenAndPelvis", "ChestAbdomenAndPelvis",
        "NeckChestAndAbdomen", "NeckChestAbdomenAndPelvis",
    ],
    "spine": [
        "Spine", "CervicalSpine", "ThoracicSpine", "LumbarSpine", "LumboSacralSpine",
        "ThoracoLumbarSpine", "CervicoThoracicSpine", "SacroCoccygealSpine", "Sacrum",
        "Coccyx",
    ],
    "upper-limb": [
        "UpperLimb", "UpperArm", "Forearm", "Hand", "Finger", "Thumb", "Humerus",
        "ElbowJoint", "WristJoint", "Shoulder", "BoneOfUpperLimb", "MuscleOfUpperLimb",
    ],
    "lower-limb": [
        "LowerLimb", "Thigh", "LowerLeg", "Knee", "Patella", "Femur", "Fibula",
        "AnkleJoint", "Calcaneus", "Foot", "Toe", "TarsalJoint", "SesamoidBonesOfFoot",
        "BoneOfLowerLimb", "MuscleOfLowerLimb", "PelvisAndLowerExtremities",
    ],
    "breast": ["Breast"],
    "whole-body": ["EntireBody"],
    "other": ["Extremity", "Phantom", "VertebralColumnAndCranium"],
}  # fmt: skip

EXTRA_SCT = {"Brain": "12738006"}  # not in CID 4031, common in headers

# Body Part Examined defined terms (PS3.16 Annex L) → region.
BODY_PART = {
    "head": [
        "HEAD", "BRAIN", "SKULL", "CEREBELLUM", "CIRCLEOFWILLIS", "EAR", "EYE", "EYELID",
        "FACE", "IAC", "JAW", "MAXILLA", "MOUTH", "NOSE", "ORBIT", "SCALP", "SELLA",
        "SINUS", "TMJ", "ZYGOMA", "CHEEK", "TONGUE", "CORNEA", "SCLERA", "MANDIBLE",
    ],
    "head-neck": ["HEADNECK"],
    "neck": [
        "NECK", "CAROTID", "LARYNX", "PAROTID", "PHARYNX", "SUBMANDIBULAR", "THYROID",
        "TRACHEA",
    ],
    "chest": [
        "CHEST", "THORAX", "LUNG", "HEART", "MEDIASTINUM", "BRONCHUS", "CLAVICLE", "RIB",
        "STERNUM", "THYMUS", "AXILLA", "ESOPHAGUS", "AORTA", "CORONARYARTERY", "NECKCHEST",
        "SCAPULA",
    ],
    "abdomen": [
        "ABDOMEN", "ADRENAL", "COLON", "DUODENUM", "GALLBLADDER", "ILEUM", "JEJUNUM",
        "KIDNEY", "LIVER", "PANCREAS", "SPLEEN", "STOMACH", "URETER", "BILEDUCT",
    ],
    "pelvis": [
        "PELVIS", "BLADDER", "BUTTOCK", "CERVIX", "HIP", "ILIUM", "OVARY", "PENIS",
        "PROSTATE", "RECTUM", "SCROTUM", "TESTIS", "URETHRA", "UTERUS", "VAGINA", "VULVA",
        "SIJOINT",
    ],
    "trunk": [
        "CHESTABDOMEN", "ABDOMENPELVIS", "CHESTABDPELVIS", "NECKCHESTABDOMEN",
        "NECKCHESTABDPELV", "TORSO",
    ],
    "spine": [
        "SPINE", "CSPINE", "TSPINE", "LSPINE", "SSPINE", "TLSPINE", "CTSPINE", "LSSPINE",
        "COCCYX", "SACRUM", "BACK",
    ],
    "upper-limb": [
        "ARM", "UPPERARM", "ELBOW", "FOREARM", "WRIST", "HAND", "FINGER", "THUMB",
        "HUMERUS", "SHOULDER", "UPRLIMB", "UPPERLIMB",
    ],
    "lower-limb": [
        "LEG", "LOWERLEG", "THIGH", "KNEE", "PATELLA", "FEMUR", "CALF", "ANKLE", "FOOT",
        "TOE", "CALCANEUS", "FIBULA", "TIBIA", "LOWRLIMB", "LOWERLIMB",
    ],
    "breast": ["BREAST"],
    "whole-body": ["WHOLEBODY"],
    "other": ["EXTREMITY", "PHANTOM"],
}  # fmt: skip

# Whole words of free-text descriptions → region (a description is split at every
# character that is not a letter or digit, so "T1_SAG_C-SPINE" gives T1, SAG, C, SPINE);
# a description whose words name several regions is resolved by
# ``description_combinations`` or else gives "other".
DESCRIPTION_WORDS = {
    "head": [
        "HEAD", "BRAIN", "CRANIUM", "CRANIAL", "CEREBRAL", "CEREBRUM", "CEREBELLUM",
        "NEURO", "SKULL", "ORBIT", "ORBITS", "SINUS", "SINUSES", "IAC", "SELLA",
        "PITUITARY", "HIPPOCAMPUS",
    ],
    "neck": ["NECK", "CAROTID", "CAROTIDS", "THYROID", "LARYNX", "PHARYNX"],
    "chest": [
        "CHEST", "THORAX", "THORACIC", "LUNG", "LUNGS", "HEART", "CARDIAC", "CORONARY",
        "MEDIASTINUM", "PULMONARY", "CALCIUM", "SMARTSCORE", "CACS",
    ],
    "abdomen": [
        "ABDOMEN", "ABDOMINAL", "ABD", "LIVER", "HEPATIC", "PANCREAS", "KIDNEY", "KIDNEYS",
        "RENAL", "SPLEEN", "COLON", "ENTEROGRAPHY", "MRCP", "UROGRAM",
    ],
    "pelvis": ["PELVIS", "PELVIC", "PROSTATE", "BLADDER", "UTERUS", "RECTUM", "HIP", "HIPS"],
    "spine": [
        "SPINE", "SPINAL", "CSPINE", "TSPINE", "LSPINE", "LUMBAR", "CERVICAL", "VERTEBRA",
        "VERTEBRAE", "VERTEBRAL", "SACRUM", "COCCYX",
    ],
    "upper-limb": [
        "ARM", "ELBOW", "FOREARM", "WRIST", "HAND", "HANDS", "FINGER", "THUMB", "HUMERUS",
        "SHOULDER", "SHOULDERS",
    ],
    "lower-limb": [
        "LEG", "LEGS", "KNEE", "KNEES", "THIGH", "FEMUR", "ANKLE", "FOOT", "FEET", "TOE",
        "TIBIA", "CALF",
    ],
    "breast": ["BREAST", "BREASTS", "MAMMO", "MAMMOGRAPHY", "TOMOSYNTHESIS"],
    "whole-body": ["WHOLEBODY", "TOTALBODY"],
}  # fmt: skip

DESCRIPTION_COMBINATIONS = {
    "head+neck": "head-neck",
    "chest+spine": "spine",
    "neck+spine": "spine",
    "abdomen+chest": "trunk",
    "abdomen+pelvis": "trunk",
    "abdomen+chest+pelvis": "trunk",
    "abdomen+chest+neck": "trunk",
    "abdomen+chest+neck+pelvis": "trunk",
}


def _codes() -> dict[str, str]:
    names = list(cid_concepts[4031]["SCT"])
    listed = {name for members in CONCEPT_REGION.values() for name in members}
    missing = sorted(set(names) - listed)
    if missing:
        raise SystemExit(f"CID 4031 concepts without a region: {missing}")
    region_of = {name: region for region, members in CONCEPT_REGION.items() for name in members}
    out: dict[str, str] = {}
    sct = concepts["SCT"]
    for name in sorted(set(names) | set(EXTRA_SCT)):
        code = EXTRA_SCT.get(name) or next(iter(sct[name]))
        region = region_of[name]
        out[f"SCT:{code}"] = region
        srt = mapping["SCT"].get(code)
        if srt:
            out[f"SRT:{srt}"] = region
    return dict(sorted(out.items()))


def _invert(table: dict[str, list[str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for region, words in table.items():
        for word in words:
            key = word.replace(" ", "").replace("-", "") if table is BODY_PART else word
            if key in out and out[key] != region:
                raise SystemExit(f"{word} is listed under two regions")
            out[key] = region
    return dict(sorted(out.items()))


def main() -> int:
    for table in (CONCEPT_REGION, BODY_PART, DESCRIPTION_WORDS):
        unknown = set(table) - set(VOCABULARY)
        if unknown:
            raise SystemExit(f"regions outside the vocabulary: {sorted(unknown)}")
    data = {
        "format": "cadp-med-regions/1",
        "_comment": (
            "Body region of an image from its header, for the 'region' condition and the "
            "model's declared domains. Generated by pipelines/generate_region_table.py; "
            "edit that script, not this file. Tried in order: anatomic_codes (Anatomic "
            "Region Sequence, first item with a known code), body_part_examined (spaces "
            "and hyphens removed, case-insensitive), then the whole words of "
            "description_keywords (case-insensitive; several regions are resolved by "
            "description_combinations, else 'other'). No evidence: unknown."
        ),
        "source": {
            "pydicom": pydicom.__version__,
            "cid": "PS3.16 CID 4031 Common Anatomic Regions (pydicom.sr) + SCT 12738006 Brain",
            "body_part_examined": "PS3.16 Annex L defined terms",
        },
        "vocabulary": VOCABULARY,
        "anatomic_codes": _codes(),
        "body_part_examined": _invert(BODY_PART),
        "description_keywords": ["StudyDescription", "SeriesDescription", "ProtocolName"],
        "description_words": _invert(DESCRIPTION_WORDS),
        "description_combinations": DESCRIPTION_COMBINATIONS,
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(data['anatomic_codes'])} codes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
