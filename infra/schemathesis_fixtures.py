#!/usr/bin/env python3
"""Fixtures for the contract check (infra/schemathesis.sh).

Against a fresh local server (`$LECTERN_URL`), as the platform admin whose
email and password are in `$ADMIN_EMAIL` / `$ADMIN_PASSWORD` (made by
`lectern-admin create-admin` beforehand), makes one real resource of each kind
the API's paths name and prints them as `export NAME=value` lines for the
shell to evaluate, so that schemathesis's generated requests reach real rows
and not only 404s. Operations that end sessions or disable accounts get users
of their own (`THROWAWAY_*`), never the admin whose token drives the run.

Standard library only: it runs before (and without) the virtualenv.
"""

import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

BASE = os.environ["LECTERN_URL"].rstrip("/")
RUN = uuid.uuid4().hex[:8]


def call(method, path, body=None, token=None, expect=(200, 201, 202)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status not in expect:
        sys.exit(f"fixtures: {method} {path} -> {status}: {text}")
    return json.loads(text) if text else None


def sign_in(email, password):
    return call("POST", "/v1/sessions", {"email": email, "password": password})


def user(name):
    """A new account (signed up as anyone may): (id, email, password)."""
    email = f"{name}.{RUN}@schemathesis.example.org"
    password = f"contract check {RUN} {name}"
    body = call(
        "POST",
        "/v1/users",
        {"email": email, "password": password, "display_name": f"Contract {name}"},
    )
    return body["id"], email, password


def items(n, pretest=0):
    """`n` right/wrong 2PL items, the last `pretest` of them pretest items without parameters."""
    out = []
    for i in range(n):
        item = {
            "id": f"ct-{i:03}",
            "content": f"What is {i} + 2?",
            "options": [str(i + 2), str(i + 3), str(i + 4), str(i + 5)],
            "correct_answer": str(i + 2),
            "concepts": ["arithmetic" if i % 2 else "algebra"],
        }
        if i >= n - pretest:
            item["pretest"] = True
        else:
            item |= {"a": 1.0 + (i % 5) / 10, "b": -2.0 + 4.0 * i / n}
        out.append(item)
    return out


def main():
    admin_token = sign_in(os.environ["ADMIN_EMAIL"], os.environ["ADMIN_PASSWORD"])["token"]
    adm = {"token": admin_token}

    def as_admin(method, path, body=None, expect=(200, 201, 202)):
        return call(method, path, body, adm["token"], expect)

    org = as_admin("POST", "/v1/organizations", {"name": "Contract School", "slug": f"contract-{RUN}"})["id"]

    student, s_email, s_password = user("student")
    teacher, _, _ = user("teacher")
    # Members whose role a generated PATCH changes or a DELETE removes, and a
    # class teacher and a class student to be unassigned/withdrawn.
    member, _, _ = user("member")
    class_teacher, _, _ = user("classteacher")
    class_student, _, _ = user("classstudent")
    # The account that disable/enable and the session-revoking routes act on.
    throwaway, t_email, t_password = user("throwaway")

    for uid, role in [
        (student, "student"),
        (teacher, "teacher"),
        (member, "student"),
        (class_teacher, "teacher"),
        (class_student, "student"),
        (throwaway, "student"),
    ]:
        as_admin("POST", f"/v1/organizations/{org}/members", {"user_id": uid, "role": role})

    klass = as_admin("POST", f"/v1/organizations/{org}/classes", {"name": "Contract class"})["id"]
    for uid in (teacher, class_teacher):
        as_admin("POST", f"/v1/classes/{klass}/teachers", {"user_id": uid})
    for uid in (student, class_student):
        as_admin("POST", f"/v1/classes/{klass}/students", {"user_id": uid})

    pool = as_admin(
        "POST",
        "/v1/pools",
        {"organization_id": org, "name": "Contract pool", "items": items(30, pretest=3)},
    )["pool_id"]

    # The student takes a test and answers a few questions: the pool then has
    # responses, stats and a test with live state in Redis.
    s_token = sign_in(s_email, s_password)["token"]
    started = call("POST", "/v1/tests", {"pool_id": pool}, s_token)
    test = started["test_id"]
    question = started["question"]
    for _ in range(3):
        answered = call(
            "POST",
            f"/v1/tests/{test}/responses",
            {"question_id": question["id"], "response": question["options"][0]},
            s_token,
        )
        question = answered.get("next_question") or answered.get("question")
        if not question:
            break

    calibration = as_admin("POST", f"/v1/pools/{pool}/calibrations", {"min_responses": 1})["calibration_id"]
    course_doc = {
        "key": "contract",
        "title": "Contract course",
        "modules": [{"title": "Module", "sub_topics": [{"title": "Sub-topic", "segments": [
            {"title": "One", "text": "The first segment."},
            {"title": "Two", "text": "The second segment."},
        ]}]}],
    }
    course = as_admin("POST", "/v1/courses", {"organization_id": org, "course": course_doc})["id"]
    teaching = as_admin(
        "POST",
        "/v1/teaching/sessions",
        {"organization_id": org, "course_id": course, "module_index": 0, "sub_topic_index": 0},
    )["session_id"]
    assessment = as_admin(
        "POST",
        "/v1/assessments",
        {"organization_id": org, "name": "Contract assessment", "pool_id": pool, "config": {"max_items": 5}},
    )["id"]
    closes = (datetime.now(timezone.utc) + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assignment = as_admin(
        "POST",
        "/v1/assignments",
        {"assessment_id": assessment, "class_id": klass, "closes_at": closes, "max_attempts": 3},
    )["id"]

    # A live session of the throwaway account, for DELETE /v1/users/{id}/sessions/{session_id}.
    throwaway_session = sign_in(t_email, t_password)["session"]["id"]

    fixtures = {
        "ADMIN_TOKEN": admin_token,
        "ORG_ID": org,
        "CLASS_ID": klass,
        "POOL_ID": pool,
        "TEST_ID": test,
        "CALIBRATION_ID": calibration,
        "TEACHING_ID": teaching,
        "COURSE_ID": course,
        "ASSESSMENT_ID": assessment,
        "ASSIGNMENT_ID": assignment,
        "STUDENT_ID": student,
        "TEACHER_ID": teacher,
        "MEMBER_ID": member,
        "CLASS_TEACHER_ID": class_teacher,
        "CLASS_STUDENT_ID": class_student,
        "THROWAWAY_ID": throwaway,
        "THROWAWAY_SESSION_ID": throwaway_session,
    }
    for name, value in fixtures.items():
        print(f"export LECTERN_CT_{name}={value}")


if __name__ == "__main__":
    main()
