"""An acknowledged delivery survives SIGKILL: a child delivers, we kill it at random moments."""

import random
import subprocess
import sys
import textwrap
import threading
import time

from appliance.store import Store

CHILD = textwrap.dedent("""
    import sys, threading
    from appliance.store import Store, Delivery
    store = Store.in_folder(sys.argv[1])
    user = store.get_user("alice@example.org")
    run = sys.argv[2]
    lock = threading.Lock()
    def writer(n):
        for i in range(100000):
            marker = f"{run}-{n}-{i}"
            store.deliver(f"Subject: {marker}\\r\\n\\r\\nbody {marker}\\r\\n".encode(), [Delivery(user.id)])
            with lock:
                print(marker, flush=True)   # acknowledged: the deliver call returned
    for n in range(8):
        threading.Thread(target=writer, args=(n,), daemon=True).start()
    threading.Event().wait()
""")


def test_every_acknowledged_delivery_survives_sigkill(tmp_path):
    store = Store.in_folder(tmp_path)
    store.add_domain("example.org")
    user = store.add_user("alice@example.org", "pw")
    store.close()
    acknowledged: set[str] = set()
    kills = 6
    for run in range(kills):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(run)],
                                 stdout=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
        reader.start()
        time.sleep(0.6 + random.random() * 0.8)
        child.kill()
        child.wait()
        reader.join(5)
        acknowledged.update(line.strip() for line in lines if line.strip())

    store = Store.in_folder(tmp_path)
    try:
        assert store.integrity_check() == "ok"
        inbox = store.get_mailbox(user.id, "INBOX")
        found = set()
        for row in store.list_messages(inbox.id):
            raw = store.get_raw(row.blob_id)
            found.add(raw.split(b"\r\n", 1)[0].removeprefix(b"Subject: ").decode())
        missing = acknowledged - found
        assert len(acknowledged) > 50, "the child delivered too little to prove anything"
        assert not missing, f"{len(missing)} acknowledged deliveries lost, e.g. {sorted(missing)[:5]}"
        uids = [r.uid for r in store.list_messages(inbox.id)]
        assert len(uids) == len(set(uids)) == len(found)
        print(f"\n{kills} SIGKILLs survived, {len(acknowledged)} acknowledged deliveries all present")
    finally:
        store.close()
