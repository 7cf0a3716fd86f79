"""The tongdai API: Flask + marshmallow on gunicorn (see api/README.md).

`api.app.create_app(settings)` is the composition root; each feature is a package with
`http.py` (resources), `schemas.py` (request/response schemas) and `services.py`.
"""
