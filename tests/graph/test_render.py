"""Pictures: the overview and a tool's neighbourhood as well-formed SVG, an HTML page around them, and the
same layouts as PNG (matplotlib, Agg): a real PNG of the scene's size, the same bytes on every render."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zlib

import pytest

from envfactory.graph import ToolGraph
from envfactory.graph.render import (
    html_page,
    neighbourhood_scene,
    neighbourhood_svg,
    overview_scene,
    overview_svg,
    scene_png,
    scene_svg,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, checking each CRC: a truncated or corrupt file fails here."""
    assert data[:8] == PNG_SIGNATURE
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def test_overview_is_svg(bundled_graph: ToolGraph) -> None:
    svg, edges = overview_svg(bundled_graph, max_edges=50)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and len(edges) == 50
    assert overview_svg(bundled_graph, max_edges=50)[0] == svg


def test_neighbourhood_is_svg_with_producers_and_consumers(bundled_graph: ToolGraph) -> None:
    svg, edges = neighbourhood_svg(bundled_graph, "shop__pay_order")
    ET.fromstring(svg)
    assert "shop__create_order" in svg and "* id" in svg
    assert any(e.target == "shop__pay_order:in:id" for e in edges)
    assert any(e.source.startswith("shop__pay_order:out:") for e in edges)
    page = html_page("pay", svg, edges)
    assert page.startswith("<!doctype html>") and "<table>" in page and "shop__pay_order" in page
    with pytest.raises(KeyError):
        neighbourhood_svg(bundled_graph, "nope")


def test_png_is_the_same_scene_deterministically(bundled_graph: ToolGraph) -> None:
    scene = neighbourhood_scene(bundled_graph, "shop__pay_order")
    first = scene_png(scene)
    chunks = png_chunks(first)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert (width, height) == (scene.width, scene.height)  # one scene unit is one pixel
    assert not any(kind in (b"tEXt", b"iTXt", b"tIME") for kind in kinds)  # no software tag, no timestamp
    assert scene_png(neighbourhood_scene(bundled_graph, "shop__pay_order")) == first
    overview = overview_scene(bundled_graph, max_edges=50)
    assert scene_png(overview) == scene_png(overview_scene(bundled_graph, max_edges=50)) != first
    assert scene_svg(overview) == overview_svg(bundled_graph, max_edges=50)[0]
    with pytest.raises(KeyError):
        neighbourhood_scene(bundled_graph, "shop__nope")


def test_png_draws_the_edges_in_their_provenance_colour(bundled_graph: ToolGraph) -> None:
    from io import BytesIO

    from PIL import Image

    scene = neighbourhood_scene(bundled_graph, "shop__pay_order")
    image = Image.open(BytesIO(scene_png(scene))).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20) or []}
    assert (0x2B, 0x6C, 0xB0) in colours  # schema edges
    assert (0xF7, 0xFA, 0xFC) in colours  # the tool's box
