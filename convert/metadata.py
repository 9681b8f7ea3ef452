"""Writes TFLite Model Metadata into a converted model: what an app needs from the file alone.

The ImageSegmenter layout MediaPipe Tasks reads: the input as an RGB image with the
NormalizationOptions that turn pixels into what the graph expects, the output as a
segmentation mask whose labels file names the classes, and fcnedge's card as an associated
JSON file, so `fcnedge run/eval/bench` need nothing beside the .tflite either. The tables are
declared in fcnedge.runtime.tflite_metadata (the reader), packed here with flatbuffers, and the
model is re-packed with LiteRT's generated schema, as TFLite Support's populator does.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import flatbuffers
import numpy as np

from fcnedge.runtime.labels import LabelSet
from fcnedge.runtime.tflite_metadata import (ASSOCIATED_FILE_TYPES, CARD_FILE, COLOR_SPACES,
                                             LABELS_FILE, METADATA_BUFFER_NAME,
                                             METADATA_IDENTIFIER, MIN_PARSER_VERSION, TABLES,
                                             UNIONS, associated_files, metadata_buffer,
                                             model_schema, read_metadata_buffer, slot_count)

_PREPEND = {"int8": "PrependInt8Slot", "uint32": "PrependUint32Slot", "int32": "PrependInt32Slot"}
TFLITE_IDENTIFIER = b"TFL3"


def pack_table(builder: flatbuffers.Builder, name: str, values: dict) -> int:
    """Packs one table (and, first, everything it points at); returns its offset."""
    fields = TABLES[name]
    unknown = set(values) - {field for field, _ in fields}
    if unknown:
        raise ValueError(f"{name} has no field {', '.join(sorted(unknown))}")
    offsets = {}
    for field, kind in fields:
        value = values.get(field)
        if value is None or kind in _PREPEND:
            continue
        if isinstance(kind, tuple):
            offsets[field] = pack_table(builder, value[0], value[1])
        elif kind == "string":
            offsets[field] = builder.CreateString(value)
        elif kind == "[float]":
            offsets[field] = builder.CreateNumpyVector(np.asarray(value, np.float32))
        elif kind == "[string]":
            offsets[field] = _offset_vector(builder, [builder.CreateString(v) for v in value])
        elif kind.startswith("["):
            offsets[field] = _offset_vector(
                builder, [pack_table(builder, kind[1:-1], item) for item in value])
        else:
            offsets[field] = pack_table(builder, kind, value)
    builder.StartObject(slot_count(fields))
    slot = 0
    for field, kind in fields:
        if isinstance(kind, tuple):
            if field in offsets:
                member = UNIONS[kind[1]].index(values[field][0]) + 1
                builder.PrependUint8Slot(slot, member, 0)
                builder.PrependUOffsetTRelativeSlot(slot + 1, offsets[field], 0)
            slot += 2
            continue
        if field in offsets:
            builder.PrependUOffsetTRelativeSlot(slot, offsets[field], 0)
        elif kind in _PREPEND and values.get(field) is not None:
            getattr(builder, _PREPEND[kind])(slot, int(values[field]), 0)
        slot += 1
    return builder.EndObject()


def _offset_vector(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def pack_metadata(metadata: dict) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(pack_table(builder, "ModelMetadata", metadata),
                   file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output())


def segmenter_metadata(card: dict, labels: LabelSet) -> dict:
    """The ModelMetadata of an fcnedge card, in MediaPipe's ImageSegmenter layout.

    The graph takes RGB pixels in [0, 255] (float) or their quantized values (integer I/O) and
    normalises inside, so NormalizationOptions is the identity: mean 0, std 1.
    """
    height, width = card["input"]["size"]
    arch = card.get("architecture", {})
    image_input = {
        "name": "image", "description": f"RGB image, {height}x{width}, pixel values 0-255",
        "content": {"content_properties": ("ImageProperties", {
            "color_space": COLOR_SPACES["RGB"],
            "default_size": {"width": width, "height": height}})},
        "process_units": [{"options": ("NormalizationOptions", {"mean": [0.0], "std": [1.0]})}],
        "stats": {"max": [255.0], "min": [0.0]},
    }
    mask_output = {
        "name": "segmentation_masks",
        "description": f"{card['output']['kind']} of {labels.num_classes} classes per pixel",
        # Dimensions 1 and 2 (height, width) hold the image, the last one the classes.
        "content": {"content_properties": ("ImageProperties",
                                           {"color_space": COLOR_SPACES["GRAYSCALE"]}),
                    "range": {"min": 1, "max": 2}},
        "associated_files": [{"name": LABELS_FILE, "description": "class names by output "
                              "channel, one a line",
                              "type": ASSOCIATED_FILE_TYPES["TENSOR_AXIS_LABELS"]}],
    }
    model = " ".join(str(part) for part in (arch.get("arch"), arch.get("backbone")) if part)
    return {
        "name": "ImageSegmenter",
        "description": f"{model or 'FCN'} semantic segmentation, {card['model_format']}, "
                       "converted by fcnedge",
        "version": card.get("created", ""),
        "subgraph_metadata": [{"name": "ImageSegmenter",
                               "input_tensor_metadata": [image_input],
                               "output_tensor_metadata": [mask_output]}],
        "author": "fcnedge",
        "associated_files": [{"name": CARD_FILE, "description": "fcnedge's model card: "
                              "labels, input, output, training and verification",
                              "type": ASSOCIATED_FILE_TYPES["DESCRIPTIONS"]}],
        "min_parser_version": MIN_PARSER_VERSION,
    }


def with_metadata(model: bytes, card: dict) -> bytes:
    """The model with the card's metadata (any earlier metadata and files replaced), read back
    before it is returned: the labels file, the card and every table must come out as written.

    Sets card["size_bytes"] to the size of the file returned, the card inside included (its
    own digits can change that size, so it is packed until the figure holds).
    """
    size = card.get("size_bytes")
    for _ in range(4):
        card["size_bytes"] = size
        packed = _pack_with_metadata(model, card)
        if len(packed) == size:
            return packed
        size = len(packed)
    raise RuntimeError("the card's size_bytes did not settle")


def _pack_with_metadata(model: bytes, card: dict) -> bytes:
    labels = LabelSet.from_dict(card["labels"], "model card")
    metadata = pack_metadata(segmenter_metadata(card, labels))
    files = {LABELS_FILE: "\n".join(labels.class_names).encode("utf-8") + b"\n",
             CARD_FILE: json.dumps(card, indent=1).encode("utf-8")}
    schema = model_schema()
    graph = schema.ModelT.InitFromPackedBuf(model, 0)
    if any(buffer.offset for buffer in graph.buffers or []):
        raise ValueError("the model keeps its weights outside the flatbuffer (over 2 GB?); "
                         "metadata cannot be added to it here")
    entries = [entry for entry in graph.metadata or []
               if _text(entry.name) == METADATA_BUFFER_NAME]
    if entries:
        buffer = graph.buffers[entries[0].buffer]
    else:
        buffer = schema.BufferT()
        graph.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_BUFFER_NAME, len(graph.buffers) - 1
        graph.metadata = [*(graph.metadata or []), entry]
    buffer.data = np.frombuffer(metadata, np.uint8)
    builder = flatbuffers.Builder(len(model) + len(metadata) + 1024)
    builder.Finish(graph.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    staged = io.BytesIO(bytes(builder.Output()))
    # Appended as TFLite Support's populator does: a zip whose offsets count from the model's
    # first byte, so the file is a valid flatbuffer and a valid zip at once.
    with zipfile.ZipFile(staged, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    result = staged.getvalue()
    _check_round_trip(result, metadata, files)
    return result


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value or "")


def _check_round_trip(model: bytes, metadata: bytes, files: dict[str, bytes]) -> None:
    if metadata_buffer(model) != metadata:
        raise RuntimeError("the metadata read back from the model differs from what was written")
    read_metadata_buffer(metadata)
    if associated_files(model) != files:
        raise RuntimeError("the associated files read back from the model differ")


def embed_card_file(model_path: str, card_path: str) -> None:
    """Writes a card into a .tflite in place (atomically), both checked before anything is
    written: the model must be a readable flatbuffer, the card fcnedge's and of its classes."""
    from fcnedge.runtime.errors import InputError
    from fcnedge.runtime.fileio import write_bytes_atomic
    from fcnedge.runtime.graph_check import check_graph

    model, card_file = Path(model_path), Path(card_path)
    if not model.is_file():
        raise InputError(f"{model}: no such .tflite file")
    if not card_file.is_file():
        raise InputError.about("embed", card_file, "no such card file")
    data = model.read_bytes()
    check_graph(data, model)
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError.about("embed", card_file, f"not readable JSON ({err})") from err
    if not isinstance(card, dict) or not {"labels", "input", "output", "model_format"} <= set(card):
        raise InputError.about("embed", card_file, "expected a model card written by fcnedge "
                               "convert (labels, input, output, model_format)")
    labels = LabelSet.from_dict(card["labels"], f"`embed` {card_file}")
    classes = _output_channels(data)
    if labels.num_classes != classes:
        raise InputError.about("embed", card_file, f"names {labels.num_classes} classes, the model "
                               f"predicts {classes}")
    write_bytes_atomic(model, with_metadata(data, card))


def _output_channels(model: bytes) -> int:
    schema = model_schema()
    root = schema.Model.GetRootAs(model, 0)
    graph = root.Subgraphs(0)
    return int(graph.Tensors(graph.Outputs(0)).ShapeAsNumpy()[-1])


def describe_model(model_path: str) -> dict:
    """What an app would read from the model: the metadata's tables and the embedded card."""
    from fcnedge.runtime.errors import InputError
    from fcnedge.runtime.graph_check import check_graph
    from fcnedge.runtime.tflite_metadata import read_embedded_card

    model = Path(model_path)
    if not model.is_file():
        raise InputError(f"{model}: no such .tflite file")
    data = model.read_bytes()
    check_graph(data, model)
    buffer = metadata_buffer(data)
    try:
        tables = read_metadata_buffer(buffer) if buffer is not None else None
    except ValueError as err:
        raise InputError(f"{model}: its TFLITE_METADATA buffer is {err}") from err
    card, why = read_embedded_card(model)
    files = sorted(associated_files(data))
    lines = [f"{model}: " + ("TFLite metadata " + (tables.get("name", "") if tables else "")
                              if tables else "no TFLite metadata")]
    if tables:
        image = tables["subgraph_metadata"][0]["input_tensor_metadata"][0]
        norm = image.get("process_units", [{}])[0].get("options", ("", {}))[1]
        lines.append(f"  input: {image.get('description', '')}; normalisation mean "
                     f"{norm.get('mean')} std {norm.get('std')}")
        lines.append(f"  associated files: {', '.join(files) or 'none'}")
    if card:
        names = LabelSet.from_dict(card["labels"], "card").class_names
        verification = card.get("verification") or {}
        lines.append(f"  card: {card.get('model_format')} {card['input'].get('size')}, "
                     f"{len(names)} classes ({', '.join(names)})"
                     + (f", val mIoU {verification['miou']}" if "miou" in verification else ""))
    else:
        lines.append(f"  no fcnedge card: {why}")
    return {"model": str(model), "metadata": tables, "files": files, "card": card or None,
            "text": "\n".join(lines)}
