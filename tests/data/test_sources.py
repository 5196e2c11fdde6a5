"""Built-in file sources (jsonl, jsonl.gz, parquet, array_record) and bad-data handling: malformed
records are skipped and counted with file:line, `data.strict` makes the first one an error, and a
missing path or empty glob fails at start-up."""

from __future__ import annotations

import gzip
import json
import logging

import numpy as np
import pytest

from phijax.data.pipeline import build_batches
from phijax.data.records import BadRecord, DataError

from .conftest import make_config

GOOD = [f"document number {i} says hello" for i in range(12)]


def write_jsonl(path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def all_text(cfg, phi4, batches: int = 3) -> tuple[str, object]:
    """Decoded inputs of the first batches (documents packed with <|endoftext|>) and the iterator."""
    it = build_batches(cfg, tokenizer=phi4)
    ids = np.concatenate([next(it)["input_ids"].ravel() for _ in range(batches)])
    return phi4.decode(ids.tolist()), it


def jsonl_source(path, **options):
    return [{"name": "web", "source": "jsonl", "paths": [str(path)], **options}]


def test_jsonl_documents_all_arrive(tmp_path, registry, phi4):
    write_jsonl(tmp_path / "a.jsonl", [json.dumps({"text": t}) for t in GOOD])
    text, _ = all_text(make_config(jsonl_source(tmp_path / "*.jsonl"), global_batch=1), phi4)
    assert all(t in text for t in GOOD)


def test_gzip_jsonl_and_custom_text_field(tmp_path, registry, phi4):
    lines = [json.dumps({"body": t, "id": i}) for i, t in enumerate(GOOD)]
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    cfg = make_config(jsonl_source(tmp_path / "a.jsonl.gz", text_field="body"), global_batch=1)
    text, _ = all_text(cfg, phi4)
    assert all(t in text for t in GOOD)


def test_bad_records_are_skipped_and_counted_with_file_and_line(tmp_path, registry, phi4, caplog):
    path = tmp_path / "mixed.jsonl"
    write_jsonl(
        path,
        [
            json.dumps({"text": GOOD[0]}),
            "{not json",
            json.dumps({"txt": "x"}),
            "",
            json.dumps({"text": 42}),
            json.dumps({"text": GOOD[1]}),
            json.dumps([1]),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="phijax.data"):
        text, it = all_text(make_config(jsonl_source(path), global_batch=1), phi4)
    assert GOOD[0] in text and GOOD[1] in text
    counters = it.source_counters()[0]
    assert counters["bad"] >= 4  # each bad line once per epoch read so far
    first_epoch = {w.split(": ")[0] for w in counters["bad_examples"][:4]}
    assert first_epoch == {f"{path}:{line}" for line in (2, 3, 5, 7)}
    for line in (2, 3, 5, 7):
        assert f"{path}:{line}" in caplog.text
    assert f"{path}:4" not in caplog.text  # blank lines are not records


def test_strict_mode_stops_at_the_first_bad_record_naming_it(tmp_path, registry, phi4):
    path = tmp_path / "mixed.jsonl"
    write_jsonl(path, [json.dumps({"text": "fine"}), "{oops"])
    cfg = make_config(jsonl_source(path, epochs=1), global_batch=1, strict=True)
    with pytest.raises(DataError, match=rf"{path}:2: not valid JSON"):
        list(build_batches(cfg, tokenizer=phi4))


def test_missing_path_and_empty_glob_fail_at_start_up(tmp_path, registry, phi4):
    with pytest.raises(Exception, match=r"no file matches .*nope\.jsonl"):
        build_batches(make_config(jsonl_source(tmp_path / "nope.jsonl")), tokenizer=phi4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match=r"no file matches .*\*\.jsonl"):
        build_batches(make_config(jsonl_source(tmp_path / "empty" / "*.jsonl")), tokenizer=phi4)


def test_parquet_rows_with_text_and_chat_columns(tmp_path, registry, phi4):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": GOOD[:6]}), tmp_path / "a.parquet", row_group_size=4)
    pq.write_table(pa.table({"text": GOOD[6:]}), tmp_path / "b.parquet", row_group_size=4)
    text, _ = all_text(
        make_config([{"name": "p", "source": "parquet", "paths": [str(tmp_path / "*.parquet")]}], global_batch=1), phi4
    )
    assert all(t in text for t in GOOD)

    chats = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"answer {i}"}] for i in range(4)]
    pq.write_table(pa.table({"messages": chats}), tmp_path / "chat.parquet")
    cfg = make_config(
        [{"name": "c", "source": "parquet", "paths": [str(tmp_path / "chat.parquet")], "text_field": "messages"}],
        global_batch=1,
        seq_len=64,
    )
    batch = next(build_batches(cfg, tokenizer=phi4))
    trained = batch["targets"][batch["loss_mask"] == 1].tolist()
    assert "answer" in phi4.decode(trained) and "<|im_start|>" not in phi4.decode(trained)


def test_parquet_without_the_text_column_fails_at_start_up(tmp_path, registry, phi4):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": GOOD}), tmp_path / "a.parquet")
    cfg = make_config([{"name": "p", "source": "parquet", "paths": [str(tmp_path / "a.parquet")]}])
    with pytest.raises(Exception, match="no column `text`.*body"):
        build_batches(cfg, tokenizer=phi4)


def test_array_record_json_and_plain_records(tmp_path, registry, phi4):
    from array_record.python.array_record_module import ArrayRecordWriter

    writer = ArrayRecordWriter(str(tmp_path / "a.array_record"), "group_size:1")
    for i, t in enumerate(GOOD):
        writer.write((json.dumps({"text": t}) if i % 2 else t).encode())
    writer.write(b"{broken")
    writer.close()
    cfg = make_config(
        [{"name": "r", "source": "array_record", "paths": [str(tmp_path / "a.array_record")]}], global_batch=1
    )
    text, it = all_text(cfg, phi4)
    assert all(t in text for t in GOOD)
    assert any("a.array_record:record 12" in w for w in it.source_counters()[0]["bad_examples"])


def test_jsonl_source_reports_file_and_line(tmp_path, registry):
    path = tmp_path / "x.jsonl"
    write_jsonl(path, [json.dumps({"text": "a"}), "", json.dumps({"text": None})])
    source = registry.create("data_sources", "jsonl", paths=[str(path)])
    assert len(source) == 2 and source[0] == {"text": "a"}
    with pytest.raises(BadRecord, match=rf"{path}:3: field `text` must be a string"):
        source[1]


def test_bad_chat_messages_are_skipped_with_file_and_line(tmp_path, registry, phi4):
    path = tmp_path / "chat.jsonl"
    good = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]
    write_jsonl(
        path,
        [json.dumps({"messages": good}), json.dumps({"messages": [{"role": "user"}]}), json.dumps({"messages": []})],
    )
    cfg = make_config(jsonl_source(path, text_field="messages"), global_batch=1, seq_len=32)
    it = build_batches(cfg, tokenizer=phi4)
    batch = next(it)
    assert phi4.decode(batch["targets"][batch["loss_mask"] == 1].tolist()).startswith("hello there")
    examples = {w.split(": ")[0] for w in it.source_counters()[0]["bad_examples"]}
    assert examples == {f"{path}:2", f"{path}:3"}


def test_add_bos_and_pad_packing_start_every_document_afresh(tmp_path, registry, phi4):
    write_jsonl(tmp_path / "a.jsonl", [json.dumps({"text": t}) for t in GOOD])
    cfg = make_config(jsonl_source(tmp_path / "a.jsonl"), global_batch=2, seq_len=24, add_bos=True, packing="pad")
    batch = next(build_batches(cfg, tokenizer=phi4))
    starts = (batch["positions"] == 0) & (batch["segment_ids"] > 0)
    assert starts.sum() >= 4 and np.all(batch["input_ids"][starts] == phi4.bos_id)
    ends = np.diff(batch["segment_ids"], append=0, axis=1) != 0  # last position of each segment
    assert np.all(batch["targets"][ends & (batch["segment_ids"] > 0)] == phi4.eod_id)


def test_a_non_utf8_line_is_a_bad_record_not_a_crash(tmp_path, registry):
    """Issue 13 § 9: one non-UTF-8 line raised AttributeError ('UnicodeDecodeError' has no 'msg')."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "bad \xff\xfe bytes"}\n')
    source = registry.create("data_sources", "jsonl", paths=[str(path)])
    assert source[0] == {"text": "fine"}
    with pytest.raises(BadRecord) as err:
        source[1]
    assert err.value.where == f"{path}:2" and "not UTF-8" in err.value.reason
