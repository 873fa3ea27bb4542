"""Where signed checkpoints of the chains' heads are kept (ADR 0061): one row per checkpoint
(its signed header and signature, for ever) and the heads of the latest few (the leaves of
their Merkle roots, to say which chain changed). Same database as the rest; a copy kept
elsewhere (the exported document) is what a writer of this database cannot change."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from ..application.checkpoints import Checkpoint, Head

metadata = sa.MetaData()

checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("header", sa.Text, nullable=False),  # the signed bytes: canonical JSON
    sa.Column("signature", sa.String(128), nullable=False),  # base64 Ed25519
)

checkpoint_heads = sa.Table(
    "audit_checkpoint_heads",
    metadata,
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("aggregate_id", sa.String(36), primary_key=True),
    sa.Column("aggregate_type", sa.String(64), nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

KEEP_HEADS = 2  # checkpoints whose heads are kept (the latest and the one before)


class CheckpointTaken(Exception):
    """Another process stored a checkpoint of this number first."""


class SqlCheckpoints:
    def __init__(self, engine: sa.Engine, *, create: bool = True) -> None:
        """`create=False`: only read (verify opens the database read-only; no tables, no checkpoints)."""
        self.engine = engine
        if create:
            metadata.create_all(engine)
            self.present = True
        else:
            with engine.connect() as conn:
                self.present = sa.inspect(conn).has_table(checkpoints.name, schema=checkpoints.schema)

    def latest(self, *, with_heads: bool = True) -> Checkpoint | None:
        if not self.present:
            return None
        with self.engine.execution_options(read_only=True).connect() as conn:
            row = conn.execute(sa.select(checkpoints).order_by(checkpoints.c.number.desc()).limit(1)).first()
            return None if row is None else self._load(conn, row, with_heads)

    def get(self, number: int, *, with_heads: bool = True) -> Checkpoint | None:
        with self.engine.execution_options(read_only=True).connect() as conn:
            row = conn.execute(sa.select(checkpoints).where(checkpoints.c.number == number)).first()
            return None if row is None else self._load(conn, row, with_heads)

    def all(self, *, limit: int | None = None) -> list[Checkpoint]:
        """Every checkpoint (headers and signatures, no heads), oldest first, or the latest `limit`."""
        if not self.present:
            return []
        query = sa.select(checkpoints).order_by(checkpoints.c.number.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.execution_options(read_only=True).connect() as conn:
            rows = conn.execute(query).all()
        return [Checkpoint.from_stored(json.loads(r.header), r.signature, None) for r in reversed(rows)]

    def save(self, checkpoint: Checkpoint) -> None:
        assert checkpoint.heads is not None
        try:
            with self.engine.begin() as conn:
                conn.execute(checkpoints.insert().values(
                    number=checkpoint.number, header=checkpoint.header_bytes().decode(), signature=checkpoint.signature
                ))
                rows = [{"number": checkpoint.number, "aggregate_id": h.aggregate_id, "aggregate_type": h.aggregate_type,
                         "version": h.version, "hash": h.hash} for h in checkpoint.heads]
                for start in range(0, len(rows), 1000):
                    conn.execute(checkpoint_heads.insert(), rows[start : start + 1000])
                conn.execute(checkpoint_heads.delete().where(checkpoint_heads.c.number <= checkpoint.number - KEEP_HEADS))
        except sa.exc.IntegrityError:
            raise CheckpointTaken(f"checkpoint {checkpoint.number} was taken by another process") from None

    @staticmethod
    def _load(conn: sa.Connection, row: Any, with_heads: bool) -> Checkpoint:
        heads = None
        if with_heads:
            h = checkpoint_heads.c
            found = conn.execute(
                sa.select(h.aggregate_id, h.aggregate_type, h.version, h.hash)
                .where(h.number == row.number).order_by(h.aggregate_id)
            ).all()
            heads = [Head(*r) for r in found]
            if not heads and json.loads(row.header)["chains"]:
                heads = None  # an older checkpoint: its heads are no longer kept
        return Checkpoint.from_stored(json.loads(row.header), row.signature, heads)
