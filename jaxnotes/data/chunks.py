"""Stored chunk records (`musicnet_cqt`'s ArrayRecord) decoded without TFDS's copies.

Owns `ChunkSource` (a grain data source over a split's records: raw bytes in, arrays that
are zero-copy views of them out) and `decode_chunk`, which walks the stored example format
(a protobuf of named byte tensors) once. It falls back to TFDS decoding for sources that are
not ArrayRecord files, and raises naming the field when a record looks wrong. A top-level
class, so grain can pickle it into worker processes. Must not import model, loop or metric
code.
"""

import math

import numpy as np


class ChunkSource:
    """A split's chunk records as numpy arrays viewing each record's stored bytes.

    TFDS's decoding parses each record into a protobuf and copies every array out of it
    (a third of a chunk read's cost); here the serialised tf.train.Example is walked once
    and the tensors are `np.frombuffer` views of it (read-only). Sources without raw
    records (anything but TFDS ArrayRecord) are read through their own `__getitem__`.
    """

    def __init__(self, source):
        self.source = source
        raw = getattr(source, "data_source", None)
        stored = getattr(getattr(source, "dataset_info", None), "features", None)
        self.specs = None
        if raw is not None and stored is not None:
            self.specs = {
                key: (np.dtype(stored[key].np_dtype), tuple(stored[key].shape))
                for key in ("cqt", "frames", "onsets", "piece_id", "start_frame", "num_frames")
            }

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        if self.specs is None:
            return self.source[index]
        return decode_chunk(self.source.data_source[index], self.specs)


def decode_chunk(record: bytes, specs: dict) -> dict:
    """A serialised chunk (TFDS tf.train.Example) -> {key: array view or int} for `specs`
    ({key: (dtype, shape)}; shape () for TFDS scalars, stored as int64 lists)."""
    lists = {}
    for _, example_features in _fields(record, 0, len(record)):  # Example: 1 features
        for _, entry in _fields(record, *example_features):  # Features: map<key, Feature>
            key_value = dict(_fields(record, *entry))
            key = record[slice(*key_value[1])].decode()
            if key in specs:
                ((kind, values),) = _fields(record, *key_value[2])  # Feature: one list
                lists[key] = (kind, [v for _, v in _fields(record, *values)])
    out = {}
    for key, (dtype, shape) in specs.items():
        kind, values = lists.get(key, (None, []))
        value = values[0] if len(values) == 1 else None
        if shape == () and kind == 3 and value is not None:  # int64_list of one value
            if not isinstance(value, int):  # packed
                value, end = _varint(record, value[0])
                if end != values[0][1]:
                    raise ValueError(f"chunk record field {key!r} holds several values")
            out[key] = value - (value >> 63 << 64)  # two's complement int64
            continue
        size = math.prod(shape)
        if kind != 1 or value is None or value[1] - value[0] != size * dtype.itemsize:
            raise ValueError(f"chunk record field {key!r} is not a {dtype} {shape} tensor")
        out[key] = np.frombuffer(record, dtype, size, value[0]).reshape(shape)  # raw bytes
    return out


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int):
    """(field number, int or (start, end) of a length-delimited value) of a protobuf message."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos)
        wire = tag & 7
        if wire == 2:
            size, pos = _varint(buf, pos)
            yield tag >> 3, (pos, pos + size)
            pos += size
        elif wire == 0:
            value, pos = _varint(buf, pos)
            yield tag >> 3, value
        elif wire in (1, 5):  # fixed64 / fixed32: not used by chunk records
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire} in a chunk record")
