"""The documentation stays usable: a short README, every registered variant named on its
environment's page, relative links that resolve, no development diary, and no placeholder
commands in the documents users copy commands from."""
import re
from pathlib import Path

import pytest

import rlsys_envs

ROOT = Path(__file__).resolve().parents[1]

#: environment ID -> its page (relative to the repository root)
PAGES = {
    "rlsys/JobShop-v0": "docs/envs/jobshop.md",
    "rlsys/ServerlessAutoscaling-v0": "docs/envs/serverless.md",
    "rlsys/ServerlessMultiFunction-v0": "docs/envs/serverless.md",
    "rlsys/VMRescheduling-v0": "docs/envs/vm.md",
    "rlsys/MemoryMapping-v0": "docs/envs/malloc.md",
    "rlsys/HybridStorage-v0": "docs/envs/storage.md",
    "rlsys/HybridStorageMigration-v0": "docs/envs/storage.md",
    "rlsys/HybridStorageParallel-v0": "docs/envs/storage.md",
    "rlsys/TaskAllocation-v0": "docs/envs/taskalloc.md",
}
#: pages written separately, which may be absent from a checkout (their links and IDs are skipped then)
MAY_BE_ABSENT = {"docs/sweeps.md", "docs/envs/malloc.md", "docs/envs/storage.md", "docs/envs/taskalloc.md"}

#: rows of the built-in environments (IDs under "rlsys/"); tests may register rows of their own
ENTRIES = [e for e in rlsys_envs.entries() if e.id.startswith("rlsys/")]
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md"),
                    *(ROOT / "agents" / "checkpoints").glob("*.md")])
COMMAND_DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "training.md"]
DIARY = re.compile(r"\bsessions?\b|tried, not kept|next steps", re.IGNORECASE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_readme_is_at_most_200_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move details into docs/"


def test_every_built_in_environment_has_a_page_in_the_table():
    missing = [e.id for e in ENTRIES if e.id not in PAGES]
    assert not missing, f"add the page of {missing} to PAGES in tests/test_docs.py"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_the_page_names_the_id_and_every_registered_variant(entry):
    page = PAGES.get(entry.id)
    if page is None:
        pytest.fail(f"{entry.id} has no page in PAGES")
    path = ROOT / page
    if not path.is_file():
        if page in MAY_BE_ABSENT:
            pytest.skip(f"{entry.id}: {page} is not written yet")
        pytest.fail(f"{entry.id}: its page {page} does not exist")
    text = path.read_text(encoding="utf-8")
    assert entry.id in text, f"{page} does not name {entry.id}"
    unnamed = [name for name in entry.variants if f"`{name}`" not in text]
    assert not unnamed, f"{page} does not name the registered variants {unnamed} of {entry.id} (as `name`)"


def _anchors(md: Path) -> set[str]:
    """GitHub's anchors of the headings of ``md`` (lower case, punctuation dropped, spaces -> '-')."""
    text = re.sub(r"^[ \t]*```.*?^[ \t]*```", "", md.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", text, re.MULTILINE)}


@pytest.mark.parametrize("doc", DOCUMENTS, ids=_rel)
def test_relative_links_point_to_existing_files_and_headings(doc):
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue                      # a URL
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            if not (path.is_relative_to(ROOT) and _rel(path) in MAY_BE_ABSENT):
                broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(target)
    assert not broken, f"{_rel(doc)}: links to missing files or headings {broken}"


@pytest.mark.parametrize("doc", DOCUMENTS, ids=_rel)
def test_no_development_diary(doc):
    hits = [f"line {i}: {line.strip()}" for i, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
            if DIARY.search(line)]
    assert not hits, f"{_rel(doc)} tells how it was developed, not how to use it: {hits}"


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", text, re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("doc", COMMAND_DOCUMENTS, ids=_rel)
def test_bash_blocks_have_no_placeholders(doc):
    blocks = _bash_blocks(doc.read_text(encoding="utf-8"))
    assert blocks, f"{_rel(doc)} has no bash blocks"
    bad = [line for block in blocks for line in block.splitlines() if "..." in line]
    assert not bad, f"{_rel(doc)}: commands must run as written, these hold a '...' placeholder: {bad}"


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The patterns themselves: a diary word, a placeholder, a link."""
    assert DIARY.search("as in the earlier Session") and DIARY.search("Next steps:")
    assert not DIARY.search("a sessional note")
    assert _bash_blocks("x\n```bash\nrlsys evaluate ... --policy x\n```\n") == ["rlsys evaluate ... --policy x\n"]
    assert LINK.findall("see [a](docs/a.md#b) and ![p](img/p.png)") == ["docs/a.md#b", "img/p.png"]
    page = tmp_path / "p.md"
    page.write_text("# ISBJSSP: blocking + swaps\n```bash\n# not a heading\n```\n## `x.zip`: a note\n")
    assert _anchors(page) == {"isbjssp-blocking--swaps", "xzip-a-note"}
