"""How the example test reads a page and compares outputs: by shape, never by value."""

from __future__ import annotations

from pathlib import Path

from tests.docs.examples import examples, matches

PAGE = """
Intro.

```console
$ curl -F file=@samples/rose.jpg http://localhost:8000/predict
{"model_version":"1","predictions":[{"class_name":"roses","confidence":0.99}]}

$ printf '%s' \\
    "x" > out.txt
```

<!-- not run: it starts the server -->
```console
$ make serve
ready
```

```python
print({"version": "1"})
```
```text
{'version': '1'}
```
"""


def test_a_page_yields_its_commands_and_scripts_in_order(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    found = examples(page)
    assert [(e.kind, e.code.splitlines()[0], e.not_run) for e in found] == [
        ("shell", "curl -F file=@samples/rose.jpg http://localhost:8000/predict", None),
        ("shell", "printf '%s' \\", None),
        ("shell", "make serve", "it starts the server"),
        ("python", 'print({"version": "1"})', None),
    ]
    assert found[1].code == "printf '%s' \\\n    \"x\" > out.txt" and found[1].expected == ""
    assert found[3].expected == "{'version': '1'}"


def test_values_may_differ_but_not_keys_kinds_or_lines() -> None:
    documented = '{"model_version":"1","probabilities":{"roses":0.99,"daisy":0.01}}'
    assert matches(documented, '{"model_version":"7","probabilities":{"tulips":0.5,"roses":0.5}}')
    assert not matches(documented, '{"model_version":7,"probabilities":{"roses":0.9}}')
    assert not matches(documented, '{"version":"1","probabilities":{"roses":0.9}}')
    assert not matches(documented, documented + "\nanother line")


def test_a_probability_is_a_number_in_either_notation() -> None:
    documented = "rose.jpg roses {'roses': 0.9963776469230652, 'tulips': 0.002639350015670061}"
    actual = "rose.jpg roses {'roses': 0.9999951124191284, 'tulips': 3.697634383570403e-06}"
    assert matches(documented, actual)
    assert matches("rose.jpg,1,roses,0.99,tulips,0.01", "rose.jpg,1,roses,1.0,tulips,9e-05")
    assert not matches("p 0.5", "p 0.5 0.5") and not matches("p 0.5", "p roses")


def test_text_lines_keep_their_words_and_lose_their_numbers_ids_and_dates() -> None:
    assert matches(
        "date: Sun, 29 Nov 2026 04:08:14 GMT\nx-request-id: 1bbb1cba20f341f8844d82197ef3d18f",
        "date: Fri, 04 Dec 2026 23:00:01 GMT\nx-request-id: 0123456789abcdef0123456789abcdef",
    )
    assert matches("rose.jpg roses 0.996", "rose.jpg tulips 0.51")
    assert not matches("rose.jpg roses 0.996", "rose.jpg roses")
    assert not matches("HTTP/1.1 400 Bad Request", "HTTP/1.1 200 OK")
    # the precision depends on the CPU (and on the version's INT8 IR), as the engine does
    assert matches("1 openvino bf16 CPU", "1 openvino int8 CPU")
    assert matches(
        'info{precision="bf16",version="1"} 1.0', 'info{precision="int8",version="1"} 1.0'
    )
    assert not matches("1 openvino bf16 CPU", "1 openvino CPU")


def test_an_ellipsis_in_the_page_stands_for_anything() -> None:
    documented = '{"version":"1","metadata":{"version":1, ...}, ...}'
    assert matches(documented, '{"version":"2","metadata":{"version":2,"classes":["a"]},"x":1}')
    assert not matches(documented, '{"release":"2","metadata":{"version":2}}')
