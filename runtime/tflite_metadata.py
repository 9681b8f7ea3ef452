"""TFLite Model Metadata: the tables fcnedge writes, and reading them back from a .tflite.

The schema is TFLite's metadata_schema.fbs (file identifier M001), the one MediaPipe Tasks and
the TFLite Support library read: a ModelMetadata flatbuffer in the model's buffer named
TFLITE_METADATA, and its associated files (labels, the card) in a zip appended to the model.
Its generated Python ships only inside mediapipe's wheel, whose dependencies (absl-py 2,
opencv-contrib-python) clash with tensorflow-model-optimization's and opencv-python's; so the
tables fcnedge uses are declared below, field by field in the schema's order, and packed and
read with the flatbuffers package. Tests check the bytes with mediapipe's own generated reader
and load the models in MediaPipe's ImageSegmenter.

This module is the runtime's: numpy and flatbuffers only, no TensorFlow.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import flatbuffers
from flatbuffers import number_types

METADATA_BUFFER_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"      # no field used here is newer than the schema's first version
CARD_FILE = "fcnedge_card.json"   # fcnedge's model card, an associated file of the model
LABELS_FILE = "labels.txt"        # one class name a line, the output's TENSOR_AXIS_LABELS

ASSOCIATED_FILE_TYPES = {"UNKNOWN": 0, "DESCRIPTIONS": 1, "TENSOR_AXIS_LABELS": 2}
COLOR_SPACES = {"UNKNOWN": 0, "RGB": 1, "GRAYSCALE": 2}

# Each table's fields in declaration order: a field's vtable slot is its position, and a union
# takes two (its type byte, then the table). Kinds: a scalar type, "string", "[string]",
# "[float]", a table's name, "[Table]", or ("union", name). Fields fcnedge never writes are
# declared too where later fields need their slots.
UNIONS = {
    "ContentProperties": ("FeatureProperties", "ImageProperties", "BoundingBoxProperties",
                          "AudioProperties"),
    "ProcessUnitOptions": ("NormalizationOptions", "ScoreCalibrationOptions",
                           "ScoreThresholdingOptions", "BertTokenizerOptions",
                           "SentencePieceTokenizerOptions", "RegexTokenizerOptions"),
}
TABLES = {
    "AssociatedFile": (("name", "string"), ("description", "string"), ("type", "int8"),
                       ("locale", "string"), ("version", "string")),
    "FeatureProperties": (),
    "ImageSize": (("width", "uint32"), ("height", "uint32")),
    "ImageProperties": (("color_space", "int8"), ("default_size", "ImageSize")),
    "ValueRange": (("min", "int32"), ("max", "int32")),
    "Content": (("content_properties", ("union", "ContentProperties")),
                ("range", "ValueRange")),
    "NormalizationOptions": (("mean", "[float]"), ("std", "[float]")),
    "ProcessUnit": (("options", ("union", "ProcessUnitOptions")),),
    "Stats": (("max", "[float]"), ("min", "[float]")),
    "TensorMetadata": (("name", "string"), ("description", "string"),
                       ("dimension_names", "[string]"), ("content", "Content"),
                       ("process_units", "[ProcessUnit]"), ("stats", "Stats"),
                       ("associated_files", "[AssociatedFile]")),
    "SubGraphMetadata": (("name", "string"), ("description", "string"),
                         ("input_tensor_metadata", "[TensorMetadata]"),
                         ("output_tensor_metadata", "[TensorMetadata]"),
                         ("associated_files", "[AssociatedFile]")),
    "ModelMetadata": (("name", "string"), ("description", "string"), ("version", "string"),
                      ("subgraph_metadata", "[SubGraphMetadata]"), ("author", "string"),
                      ("license", "string"), ("associated_files", "[AssociatedFile]"),
                      ("min_parser_version", "string")),
}
SCALARS = {"int8": number_types.Int8Flags, "uint32": number_types.Uint32Flags,
           "int32": number_types.Int32Flags}


def slot_count(fields) -> int:
    """A table's vtable slots: one a field, two a union."""
    return sum(2 if isinstance(kind, tuple) else 1 for _, kind in fields)


def read_table(buf: bytes, position: int, name: str) -> dict:
    """One table as a dict of the fields present (unions as (member name, dict))."""
    table = flatbuffers.table.Table(buf, position)
    values, slot = {}, 0
    for field, kind in TABLES[name]:
        if isinstance(kind, tuple):
            type_at, value_at = table.Offset(4 + 2 * slot), table.Offset(6 + 2 * slot)
            slot += 2
            member = table.Get(number_types.Uint8Flags, table.Pos + type_at) if type_at else 0
            if member and value_at:
                member_name = UNIONS[kind[1]][member - 1]
                inner = table.Indirect(table.Pos + value_at)
                values[field] = (member_name, read_table(buf, inner, member_name)
                                 if member_name in TABLES else {})
            continue
        at = table.Offset(4 + 2 * slot)
        slot += 1
        if not at:
            continue
        if kind in SCALARS:
            values[field] = table.Get(SCALARS[kind], table.Pos + at)
        elif kind == "string":
            values[field] = table.String(table.Pos + at).decode("utf-8")
        elif kind == "[float]":
            values[field] = table.GetVectorAsNumpy(number_types.Float32Flags, at).tolist()
        elif kind == "[string]":
            start = table.Vector(at)
            values[field] = [table.String(start + 4 * i).decode("utf-8")
                             for i in range(table.VectorLen(at))]
        elif kind.startswith("["):
            start = table.Vector(at)
            values[field] = [read_table(buf, table.Indirect(start + 4 * i), kind[1:-1])
                             for i in range(table.VectorLen(at))]
        else:
            values[field] = read_table(buf, table.Indirect(table.Pos + at), kind)
    return values


def read_metadata_buffer(metadata: bytes) -> dict:
    """A ModelMetadata flatbuffer as a dict; ValueError when it is not one."""
    if len(metadata) < 8 or metadata[4:8] != METADATA_IDENTIFIER:
        raise ValueError(f"not a TFLite metadata buffer (no {METADATA_IDENTIFIER.decode()} "
                         "identifier)")
    try:
        return read_table(metadata, flatbuffers.encode.Get(
            flatbuffers.packer.uoffset, metadata, 0), "ModelMetadata")
    except Exception as err:  # a truncated or foreign buffer reads out of range
        raise ValueError(f"unreadable TFLite metadata ({type(err).__name__}: {err})") from err


def model_schema():
    """LiteRT's generated TFLite schema (ImportError under tflite-runtime, which has none)."""
    from ai_edge_litert import schema_py_generated as schema

    return schema


def metadata_buffer(model: bytes) -> bytes | None:
    """The bytes of a model's TFLITE_METADATA buffer, or None when it has none."""
    schema = model_schema()
    root = schema.Model.GetRootAs(model, 0)
    for index in range(root.MetadataLength()):
        entry = root.Metadata(index)
        if (entry.Name() or b"").decode("utf-8", "replace") == METADATA_BUFFER_NAME:
            return root.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None


def associated_files(model: bytes) -> dict[str, bytes]:
    """The files zipped onto the model's end ({} when there are none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError, ValueError, KeyError):
        return {}


def read_embedded_card(path: str | os.PathLike) -> tuple[dict, str | None]:
    """The card inside a .tflite: (card, None), or ({}, why there is none) for a model
    without fcnedge's metadata or with metadata it cannot read.

    The card is read from the associated files' zip alone, so this needs no schema module
    (tflite-runtime, the fallback interpreter, ships none); the flatbuffer is looked at only
    to say why a card is missing.
    """
    model = Path(path).read_bytes()
    files = associated_files(model)
    if CARD_FILE not in files:
        try:
            has_metadata = metadata_buffer(model) is not None
        except ImportError:
            return {}, f"it carries no {CARD_FILE}"
        except Exception as err:
            return {}, f"its flatbuffer cannot be read ({type(err).__name__})"
        return {}, (f"its metadata has no {CARD_FILE}" if has_metadata
                    else "it has no TFLite metadata")
    try:
        card = json.loads(files[CARD_FILE].decode("utf-8"))
    except ValueError as err:
        return {}, f"its {CARD_FILE} is not JSON ({err})"
    if not isinstance(card, dict):
        return {}, f"its {CARD_FILE} is not a JSON object"
    return card, None
