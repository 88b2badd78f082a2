"""Pictures: the overview and a tool's neighbourhood as well-formed SVG, and an HTML page around them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from envfactory.graph import ToolGraph
from envfactory.graph.render import html_page, neighbourhood_svg, overview_svg


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
