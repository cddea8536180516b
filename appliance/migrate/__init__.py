"""Moving mail in and out of Kotakpos: files (mbox, Maildir), a remote IMAP account, snapshots.

Every source is read as folders of ``SourceMessage`` (bytes, flags, internal date and a
label that names the message in errors); ``importer.Importer`` writes them into one
local user, skipping what that user already holds (by content, so an interrupted import
simply runs again). ``mbox`` and ``maildir`` read and write the two file formats,
``imap`` reads a remote account, ``backup`` takes, verifies and restores from
snapshots. The CLI (``appliance.cli.migrate``) only adds progress bars and summaries.
"""
