"""The MDA: the filters every locally delivered message passes, and its final delivery.

``Mda`` (pipeline.py) runs the configured filters over a message while the SMTP client
waits after DATA and writes the result in one store transaction. Each filter is a
``Filter`` making one ``Check`` per message (filter.py, after maddy's check modules):
``virus`` (built-in checks, clamd), ``auth`` (SPF, DKIM, DMARC), ``spam`` (heuristics,
Bayes, spamd), ``rules`` (per-user Sieve, vacation), ``receipts`` (DSN, MDN, ledger) and,
off by default, ``greylist``.
The trainer (trainer.py) listens to store events: a message moved into Junk trains
Bayes as spam, out of Junk as ham; a first \\Seen may send a read receipt; arriving
DSNs and MDNs update the receipt ledger.
"""

from appliance.mda.filter import ACCEPT, Check, Filter, Incoming, Verdict
from appliance.mda.pipeline import Mda

__all__ = ["ACCEPT", "Check", "Filter", "Incoming", "Mda", "Verdict"]
