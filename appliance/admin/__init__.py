"""Administration: the in-process API, its Unix-socket server and client.

``api.AdminAPI`` is the one implementation; ``server.AdminSocketServer`` exposes it as
JSON lines, ``client.AdminClient`` mirrors it over the socket. Nothing here renders.
"""
