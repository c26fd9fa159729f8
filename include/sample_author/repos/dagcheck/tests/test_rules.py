from dagcheck.rules import check_source

BAD = """
import psycopg
conn = psycopg.connect("dbname=warehouse")

def load():
    from datetime import datetime
    return datetime.now()
"""


def test_import_time_io_and_wall_clock_are_reported():
    codes = [f.code for f in check_source("bad.py", BAD)]
    assert codes == ["DC001", "DC002"]


def test_vague_task_id_is_reported():
    findings = check_source("x.py", "op = Op(task_id='task_3')\n")
    assert [f.code for f in findings] == ["DC003"]
