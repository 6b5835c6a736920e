"""`vdi serve`: a small local web app over the store (search, runs, evaluation) that keeps the
model loaded between queries and plays the videos it finds.

Starlette + Jinja2, imported only when `vdi serve` runs (never by `vdi --help`). `create_app`
is what the command and the tests call; routes live per page in small modules (`api`, `pages`,
`media`); the database is opened read-only (`store`), and only video files the store knows are
served (`media`).
"""
