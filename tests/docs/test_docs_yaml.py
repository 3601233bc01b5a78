"""Every fenced ``yaml`` block of README.md and docs/ is a valid pipeline file (what
``rag validate`` checks: no model loaded), or is marked as a fragment or an eval file."""

from __future__ import annotations

import pytest
import yaml

from tests.docs._blocks import ROOT, YAML_LANGUAGES, Block, all_blocks

pytestmark = pytest.mark.unit

BLOCKS = all_blocks(YAML_LANGUAGES)


def test_yaml_blocks_found() -> None:
    assert any(b.marker is None for b in BLOCKS), "no pipeline YAML block found in the docs"
    wrong = [
        f"{b.where}: '{b.marker}'" for b in BLOCKS if b.marker not in (None, "fragment", "eval")
    ]
    assert not wrong, "a yaml block can be marked 'fragment' or 'eval' only: " + "; ".join(wrong)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_yaml_block(block: Block) -> None:
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError as err:
        pytest.fail(f"{block.where}: not valid YAML: {err}")
    if block.marker == "fragment":
        assert data is not None, f"{block.where}: an empty YAML block"
        return
    if block.marker == "eval":
        from rag.eval.runner import TOP_LEVEL

        assert isinstance(data, dict), f"{block.where}: an eval file is a mapping"
        unknown = sorted(set(data) - set(TOP_LEVEL))
        assert not unknown, f"{block.where}: unknown eval keys {unknown}; valid: {TOP_LEVEL}"
        assert {"dataset", "pipeline"} <= set(data), f"{block.where}: needs dataset and pipeline"
        return
    from rag.core.errors import ConfigError
    from rag.core.pipeline import PipelineFile

    try:
        # Blank lines first, so that the error's line number is the page's.
        PipelineFile.load(block.path.relative_to(ROOT), text="\n" * block.line + block.text)
    except ConfigError as err:
        pytest.fail(
            f"{block.where}: `rag validate` would refuse this block: {err}\n"
            "Fix it, or mark a piece of a file with <!-- docs-check: fragment --> above the fence."
        )
