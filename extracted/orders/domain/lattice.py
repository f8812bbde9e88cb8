"""The merge of two copies of one order (SPEC §3): a lattice, so any order of updates converges.

Items of an order are immutable and its status only moves `placed -> cancelled`, so merging
is "insert if missing, else cancelled wins". Applying the same copy twice, or two copies in
either order, gives the same result: redelivery, reordering and takeover never regress.
"""

from __future__ import annotations

from dataclasses import replace

from extracted.orders.domain.model import Order, OrderStatus


def merged(ours: Order | None, theirs: Order) -> Order | None:
    """The order to store after learning `theirs`, or None when `ours` already covers it.

    Only the status can change on a known order (lines are immutable, ours are kept). An order
    of ours that is not visible (a saga in flight or failed) is never touched: the other side
    cannot hold it, since it is published only once placed.
    """
    if ours is None:
        return theirs
    if ours.status is OrderStatus.PLACED and theirs.status is OrderStatus.CANCELLED:
        return replace(ours, status=OrderStatus.CANCELLED, origin=theirs.origin)
    return None
