"""Seed: "Mit Datenbank-Integration".

asyncpg and a PostgreSQL server are not part of this project: `create_pool` below is a small stand-in with
asyncpg's shape (pool.acquire(), conn.fetchrow() with $1 placeholders, pool.close()) over an in-memory sqlite3
database holding the seed's `customers` table. The rest is the seed's code.
"""

import asyncio
import os
import sqlite3
from contextlib import asynccontextmanager

from gateway.engine import UserTaskClient

ENGINE_URL = os.environ.get("PROCESSCUBE_ENGINE_URL", "http://localhost:8000")

CUSTOMERS = [("C-1", "Alice GmbH", 5000), ("C-2", "Bob AG", 100), ("C-3", "Carol KG", 20000)]


class _Connection:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def fetchrow(self, query: str, *args):
        row = self._db.execute(query.replace("$1", "?"), args).fetchone()
        return dict(row) if row is not None else None


class _Pool:
    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:")
        self._db.row_factory = sqlite3.Row
        self._db.execute("CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT, credit_limit INTEGER)")
        self._db.executemany("INSERT INTO customers VALUES (?, ?, ?)", CUSTOMERS)

    @asynccontextmanager
    async def acquire(self):
        yield _Connection(self._db)

    async def close(self) -> None:
        self._db.close()


async def create_pool(dsn: str) -> _Pool:
    return _Pool()


async def process_with_database():
    """User Tasks mit Datenbank-Integration."""
    # DB-Pool erstellen
    pool = await create_pool("postgresql://user:password@localhost/mydb")
    async with UserTaskClient(ENGINE_URL) as client:
        user_tasks = await client.get_user_tasks()
        for task in user_tasks:
            token = task.get("token", {})
            # Daten aus DB laden
            async with pool.acquire() as conn:
                customer = await conn.fetchrow("SELECT * FROM customers WHERE id = $1", token.get("customerId"))
            # Business-Logik
            result = {
                "approved": customer["credit_limit"] > token.get("amount", 0),
                "customerName": customer["name"],
            }
            # Task abschließen
            await client.finish_user_task(task["userTaskInstanceId"], result)
    await pool.close()


asyncio.run(process_with_database())
