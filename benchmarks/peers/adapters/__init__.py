"""One adapter per library and backend, all with the interface of
:class:`peers.adapters.base.Peer`; the list of them is ``peers.registry``.

A client process imports only its own library's adapter (see
:func:`peers.adapters.base.load`), so no process loads another library.
"""
