

def test_both_stores_declare_the_audit_store_interface(tmp_path):
    from exporter.audit.store import AuditStore
    from exporter.audit.store_pg import PgStore
    from exporter.audit.store_sqlite import SqliteStore

    assert AuditStore in PgStore.__mro__ and AuditStore in SqliteStore.__mro__
    members = {name for name in vars(AuditStore) if not name.startswith("_")} - {"kind"}
    for store in (PgStore, SqliteStore):
        missing = [name for name in members if getattr(store, name) is getattr(AuditStore, name)]
        assert missing == [], f"{store.__name__} does not implement {missing}"
