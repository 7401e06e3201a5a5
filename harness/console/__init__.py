"""`harness serve`: the web console (the optional `web` extra: Starlette, Jinja2, uvicorn).

app.py       the application factory create_app(settings) and its two background tasks
settings.py  PGFERRY_CONSOLE_* settings
guard.py     every request: security headers, no anonymous access, CSRF
auth.py      login with PostgreSQL credentials, sessions in memory, role membership
db.py        the console's connection and each user's (opened as that user), the trust probe
snapshot.py  the overview's numbers: one snapshot shared by every page
queries.py   what pages read as the logged-in user (runs, one run)
charts.py    inline SVG drawn on the server
filters.py   how times and durations read on a page
pages/       the routes, one module per page
"""
