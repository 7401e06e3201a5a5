"""Operations: status, alerts, report, journal, extracts."""
