"""Operations and access: the ops API, the dashboard, metrics, roles and the audit log."""
