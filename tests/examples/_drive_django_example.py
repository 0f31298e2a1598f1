"""Drive examples/django_project with Django's test Client; run by test_django_example.py.

A separate process, because Django's settings can be configured only once per process and
tests/producers configures them differently for the pytest process. Run with the example
directory on sys.path and DJANGO_SETTINGS_MODULE=config.settings; argv[1] is a JSON list of
[path, form] posts. Prints a JSON list of {"status", "body"}, one per post.
"""

from __future__ import annotations

import json
import sys

import django
from django.test.utils import setup_test_environment


def main() -> None:
    django.setup()
    setup_test_environment()
    from django.db import connection
    from django.test import Client

    # The test database: in-memory sqlite with the example's migrations applied.
    connection.creation.create_test_db(verbosity=0)
    client = Client()
    results = []
    for path, form in json.loads(sys.argv[1]):
        response = client.post(path, form)
        results.append({"status": response.status_code, "body": response.json()})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
