"""Time-partitioned storage on Postgres: bounds (pure), partition upkeep and the conversion of plain tables."""
