"""The Redis contract, shared by the offline side (publish) and the API: key layout and list
encoding (``keys``), RESP packing (``resp``; compiled block packers in ``kernels``), whole-matrix
encoding (``packed``), the versioned write path (``writer``: write, verify, flip, clean up, roll
back) and the API's pipelined client (``client``).

``keys``, ``resp`` and ``client`` are pure Python (plus hiredis): the API's cache-hit path imports
them and nothing heavier. Nothing here imports ``pipelines`` or ``serving``.
"""
