"""The hello-world WSGI app of the front benchmark (bench/front/run.py): served by gunicorn,
directly and behind nginx or tunerd, so what differs between the runs is the front alone."""

BODY = b"Hello, world!\n"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]
