"""ClickHouse call log: migrations, the sink (events -> CDRs), named KPI reports.

See analytics/README.md (design, tables, commands) and analytics/BI.md (BI access).
"""
