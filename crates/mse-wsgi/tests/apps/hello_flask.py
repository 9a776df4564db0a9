"""Flask hello app (benchmark) plus routes the tests use."""
from flask import Flask, request

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!"


@app.route("/echo", methods=["POST"])
def echo():
    return request.get_data()
