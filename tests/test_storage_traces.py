"""Hybrid storage traces: the MSR Cambridge and Sibyl loaders on hand-written files (FILETIME
conversion, 512 B-aligned offsets split into 4 KiB pages, errors naming file, line and field), the
synthetic generator (named shapes, held-out ones, seeded, written in the MSR format and read back)."""
import numpy as np
import pytest

from rlsys_envs.storage.generator import (HELD_OUT, SHAPES, TRAIN_SHAPES, EpisodeTrace, SyntheticWorkload,
                                          TraceFormatError, generate_trace, load_msr_csv, load_sibyl_csv, load_trace,
                                          write_msr_csv)

T0 = 128166372003061629   # the MSR distribution README's example row
MSR = f"""Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime
{T0},hm,0,Write,7014912,4096,26
{T0 + 10_000_000},hm,0,Read,7016960,8192,41
{T0 + 100_000},hm,0,Read,0,512,10

{T0 + 20_000_000},hm,1,Write,4096,4096,5
{T0 + 30_000_000},hm,1,write,8192,4096,5
"""


@pytest.fixture
def msr_file(tmp_path):
    path = tmp_path / "hm_0.csv"
    path.write_text(MSR)
    return path


def test_msr_parser_converts_filetime_and_sorts_by_timestamp(msr_file):
    tr = load_msr_csv(msr_file)
    assert tr.n_requests == 5 and tr.name == "hm_0" and tr.hostname == "hm"
    # FILETIME: 100 ns ticks since 1601-01-01; the README's example row is 2007-02-22 17:00:00.306 UTC
    assert tr.start_unix_s == pytest.approx(1_172_163_600.3061628, abs=1e-6)
    # the third row (0.01 s) comes before the second (1 s): requests are in timestamp order
    assert np.allclose(tr.time_s, [0.0, 0.01, 1.0, 2.0, 3.0])
    assert tr.offset.tolist() == [7014912, 0, 7016960, 4096, 8192]
    assert tr.is_write.tolist() == [True, False, False, True, True]
    assert tr.disk.tolist() == [0, 0, 0, 1, 1]


def test_512_byte_aligned_requests_are_split_into_every_4k_page_they_touch(msr_file):
    ep = EpisodeTrace(load_msr_csv(msr_file))
    # 7014912 = 1712.625 pages: a 4 KiB write there straddles pages 1712 and 1713;
    # 7016960 = 1713.125 pages + 8 KiB touches 1713, 1714 and 1715; 512 B at 0 touches page 0
    assert ep.npages == [2, 1, 3, 1, 1]
    pages = [ep.pid[ep.ptr[i]:ep.ptr[i + 1]] for i in range(ep.n)]
    assert pages[0][1] == pages[2][0]                  # page 1713 is shared by the two requests
    assert len({p for ps in pages for p in ps}) == ep.n_pages == 7   # disk 1's pages 1 and 2 are their own
    assert ep.seq == [False, False, False, False, True]     # 8192 follows 4096 + 4096 on disk 1
    assert ep.t_us[2] == pytest.approx(1e6)


def test_sibyl_three_column_format_and_auto_detection(tmp_path):
    path = tmp_path / "sibyl.csv"
    path.write_text("4096,4096,Read\n8192,16384,Write\n")
    for tr in (load_sibyl_csv(path), load_trace(path)):
        assert tr.time_s is None and tr.offset.tolist() == [4096, 8192] and tr.is_write.tolist() == [False, True]
    assert EpisodeTrace(load_trace(path)).npages == [1, 4]


@pytest.mark.parametrize("row, field", [
    (f"{T0},hm,0,Read,4096,4096", "expected 7"),
    (f"{T0},hm,0,Erase,4096,4096,1", "field Type"),
    (f"{T0},hm,0,Read,-4096,4096,1", "field Offset"),
    (f"{T0},hm,0,Read,4096,0,1", "field Size"),
    ("12x4,hm,0,Read,4096,4096,1", "field Timestamp"),
    (f"{T0},,0,Read,4096,4096,1", "field Hostname"),
    (f"{T0},hm,zero,Read,4096,4096,1", "field DiskNumber"),
    (f"{T0},hm,0,Read,4096,4096,slow", "field ResponseTime"),
])
def test_msr_errors_name_the_file_line_and_field(tmp_path, row, field):
    path = tmp_path / "bad.csv"
    path.write_text(f"{T0},hm,0,Read,0,4096,1\n{row}\n")
    with pytest.raises(TraceFormatError, match=rf"bad\.csv:2: .*{field}"):
        load_msr_csv(path)


def test_loader_errors_for_empty_unreadable_and_unknown_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("\n")
    with pytest.raises(TraceFormatError, match="empty.csv: the file is empty"):
        load_trace(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime\n")
    with pytest.raises(TraceFormatError, match="no requests"):
        load_msr_csv(header_only)
    odd = tmp_path / "odd.csv"
    odd.write_text("1,2,3,4\n")
    with pytest.raises(TraceFormatError, match="odd.csv:1: expected an MSR row"):
        load_trace(odd)
    with pytest.raises(TraceFormatError, match="bad.csv:1: .*field Type"):
        (tmp_path / "bad.csv").write_text("0,4096,Trim\n")
        load_sibyl_csv(tmp_path / "bad.csv")
    with pytest.raises(TraceFormatError, match="cannot be read"):
        load_msr_csv(tmp_path / "missing.csv")


def test_limit_reads_only_the_first_requests(msr_file):
    assert load_msr_csv(msr_file, limit=2).n_requests == 2


def test_at_least_twelve_named_shapes_some_held_out():
    assert len(SHAPES) >= 12
    assert len(HELD_OUT) >= 3 and set(HELD_OUT).isdisjoint(TRAIN_SHAPES)
    assert set(HELD_OUT) | set(TRAIN_SHAPES) == set(SHAPES)
    assert SyntheticWorkload("train", 10).shapes == TRAIN_SHAPES
    with pytest.raises(ValueError, match="shape must be one of"):
        SyntheticWorkload("nope", 10)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_is_seeded_and_round_trips_through_the_msr_format(shape, tmp_path):
    a = generate_trace(shape, 400, np.random.default_rng(3))
    b = generate_trace(shape, 400, np.random.default_rng(3))
    assert np.array_equal(a.offset, b.offset) and np.array_equal(a.time_s, b.time_s)
    assert a.n_requests == 400 and np.all(np.diff(a.time_s) >= 0) and np.all(a.offset % 512 == 0)
    back = load_msr_csv(write_msr_csv(a, tmp_path / f"{shape}.csv", header=shape.startswith("z")))
    assert np.array_equal(back.offset, a.offset) and np.array_equal(back.size, a.size)
    assert np.array_equal(back.is_write, a.is_write)
    assert np.allclose(back.time_s, a.time_s, atol=1e-6)        # 100 ns ticks


def test_shapes_differ_in_what_they_are_named_for():
    rng = np.random.default_rng(0)
    read = generate_trace("zipf_read", 4000, rng)
    write = generate_trace("zipf_write", 4000, rng)
    assert read.is_write.mean() < 0.1 < 0.8 < write.is_write.mean()
    scan = EpisodeTrace(generate_trace("seq_scan", 4000, rng))
    assert np.mean(scan.seq) > 0.9
    uniform = EpisodeTrace(generate_trace("uniform_random", 4000, rng))
    zipf = EpisodeTrace(generate_trace("zipf_oltp", 4000, rng))
    assert zipf.n_pages < 0.8 * uniform.n_pages           # a hot set reuses pages


def test_next_request_and_next_read_are_the_future_of_each_page(msr_file):
    ep = EpisodeTrace(load_msr_csv(msr_file))
    shared = ep.pid[ep.ptr[0] + 1]                      # page 1713: written by request 0, read by 2
    assert ep.next_request(shared, 0) == 2 and ep.next_request(shared, 2) == ep.n
    assert ep.next_read[ep.ptr[0] + 1] == 2             # its next access is a read
    assert ep.accesses_between(shared, -1, 4) == 2
