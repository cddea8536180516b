"""bench/store_writers.py's funnel: its frames, and that a delivery through it stores what
Store.deliver stores (else the benchmark would compare a different write)."""

import io

import pytest

from appliance.store import Delivery, Store
from bench.store_writers import FrameError, delivery_request, encode_frame, read_frame, store_request
from bench.smtp_load import _Messages


def test_frames_follow_each_other_and_end_cleanly():
    frames = encode_frame({"to": [[1, "INBOX"]]}, b"body\r\n") + encode_frame({"uids": {}})
    stream = io.BufferedReader(io.BytesIO(frames))
    assert read_frame(stream) == ({"to": [[1, "INBOX"]]}, b"body\r\n")
    assert read_frame(stream) == ({"uids": {}}, b"")
    assert read_frame(stream) is None


@pytest.mark.parametrize("cut", [3, 8, 12, -1])
def test_a_cut_frame_is_an_error(cut):
    frame = encode_frame({"to": []}, b"message")
    with pytest.raises(FrameError):
        read_frame(io.BufferedReader(io.BytesIO(frame[:cut])))


def test_an_oversized_frame_is_refused_before_reading_it():
    with pytest.raises(FrameError, match="announced"):
        read_frame(io.BufferedReader(io.BytesIO(b"\x00\x00\x00\x02\x7f\xff\xff\xff{}")))


@pytest.mark.parametrize("analyse", [False, True])
def test_a_funnelled_delivery_stores_what_deliver_stores(tmp_path, analyse):
    raw = _Messages(4096, "user@example.org").get(1)
    forms = []
    for name, funnel in (("direct", False), ("funnel", True)):
        store = Store.in_folder(tmp_path / name, indexer=False)
        try:
            store.add_domain("example.org")
            user = store.add_user("user@example.org", "pw")
            if funnel:
                header, body = read_frame(io.BufferedReader(io.BytesIO(
                    delivery_request(raw, [Delivery(user.id)], analyse))))
                reply = store_request(store, header, body)
                assert list(reply["uids"]) == [str(user.id)]
            else:
                store.deliver(raw, [Delivery(user.id)])
            rows, by_blob = store.messages_with_forms(store.get_mailbox(user.id, "INBOX").id)
            forms.append(([(r.uid, r.size) for r in rows], list(by_blob.values()),
                          store.thread_keys(store.get_mailbox(user.id, "INBOX").id)))
        finally:
            store.close()
    assert forms[0] == forms[1]
