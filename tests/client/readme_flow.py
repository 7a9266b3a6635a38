"""The README's API flow, driven through a client that openapi-python-client generated from the
live /openapi.json, unchanged: if the document lies (a parameter in the wrong place, a shape or
a status it does not list), this fails. Run by deploy/dev/generated-client.sh."""

import io
import sys
import time

from heydoc_client import AuthenticatedClient, Client
from heydoc_client.api.auth import create_api_key, login, logout, register
from heydoc_client.api.contacts import (
    create_contact,
    export_contacts,
    get_contact,
    get_import,
    import_contacts,
    list_contacts,
    set_contact_tags,
    update_contact,
)
from heydoc_client.api.messages import list_messages, mark_messages_read, send_message
from heydoc_client.api.scheduled_messages import (
    create_scheduled_message,
    get_scheduled_message,
    list_pending_scheduled_messages,
    preview_scheduled_message,
    update_scheduled_message_status,
)
from heydoc_client.api.tags import create_tag, list_tags
from heydoc_client.api.users import create_user, get_me, list_audit_log, update_user
from heydoc_client.models import (
    ContactChanges,
    Credentials,
    ErrorBody,
    NewContact,
    NewKey,
    NewSchedule,
    NewTag,
    NewUser,
    Registration,
    RoleName,
    ScopeName,
    SendMessage,
    StatusChange,
    StatusName,
    TagIds,
    TimingRequest,
    UserChanges,
)
from heydoc_client.types import File

base = sys.argv[1]


def ok(response, status=200):
    """The parsed body of a response with the expected status (never an ErrorBody)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response.parsed is not None and not isinstance(response.parsed, ErrorBody), response.content[:500]
    return response.parsed


anonymous = Client(base_url=base, raise_on_unexpected_status=True)
ok(register.sync_detailed(client=anonymous, body=Registration(username="admin", password="a-long-password")), 201)
session = ok(login.sync_detailed(client=anonymous, body=Credentials(username="admin", password="a-long-password")))
api = AuthenticatedClient(base_url=base, token=session.data.token, raise_on_unexpected_status=True)
assert ok(get_me.sync_detailed(client=api)).role == "admin"

tag = ok(create_tag.sync_detailed(client=api, body=NewTag(name="Family", color="#ff4444")), 201).data
contact = ok(
    create_contact.sync_detailed(client=api, body=NewContact(phone="1234567890", name="John Doe", tag_ids=[tag.id])),
    201,
).data
assert contact.phone == "1234567890" and contact.tags[0].name == "Family"
ok(update_contact.sync_detailed("1234567890", client=api, body=ContactChanges(name="John D.")))
ok(set_contact_tags.sync_detailed("1234567890", client=api, body=TagIds(tag_ids=[tag.id])))
assert ok(get_contact.sync_detailed("1234567890", client=api)).name == "John D."

sent = ok(send_message.sync_detailed(client=api, body=SendMessage(phone_number="1234567890", message="Hello from the bot!")))
assert sent.data.status in ("queued", "sending", "sent", "delivered", "read"), sent.data.status
history = ok(list_messages.sync_detailed("1234567890", client=api, limit=20))
assert history and history[0].message_text == "Hello from the bot!"
ok(mark_messages_read.sync_detailed("1234567890", client=api))

page = ok(list_contacts.sync_detailed(client=api, limit=50, tag=tag.id, q="John"))
assert [c.phone for c in page] == ["1234567890"], page
assert any(t.name == "Family" for t in ok(list_tags.sync_detailed(client=api)))

timing = TimingRequest(scheduled_time="2099-01-16T09:00:00Z", recurrence="daily")
preview = ok(preview_scheduled_message.sync_detailed(client=api, body=timing))
assert len(preview.next_runs) == 5, preview
created = ok(
    create_scheduled_message.sync_detailed(
        client=api,
        body=NewSchedule(message="Good morning!", recipients=["1234567890"], scheduled_time="2099-01-16T09:00:00Z", recurrence="daily"),
    ),
    201,
).data
assert any(s.id == created.id for s in ok(list_pending_scheduled_messages.sync_detailed(client=api)))
paused = ok(update_scheduled_message_status.sync_detailed(created.id, client=api, body=StatusChange(status=StatusName.PAUSED)))
assert paused.data.status == "paused"
assert ok(get_scheduled_message.sync_detailed(created.id, client=api)).status == "paused"

csv = b"phone,name,tags\n14155550101,Ana,Family\n14155550102,Ravi,\nnot-a-phone,Bad,\n"
started = import_contacts.sync_detailed(client=api, body=File(payload=io.BytesIO(csv), file_name="contacts.csv", mime_type="application/octet-stream"))
assert started.status_code in (200, 202), started.content
job = started.parsed.data
while job.status == "running":
    time.sleep(0.2)
    job = ok(get_import.sync_detailed(job.id, client=api))
assert (job.status, job.created, job.rejected) == ("done", 2, 1), job
exported = export_contacts.sync_detailed(client=api)
assert exported.status_code == 200 and b"14155550101" in exported.content

agent = ok(create_user.sync_detailed(client=api, body=NewUser(username="reception", password="a-long-password", role=RoleName.AGENT)), 201).data
assert agent.role == "agent"
disabled = ok(update_user.sync_detailed(agent.id, client=api, body=UserChanges(disabled=True)))
assert disabled.disabled is True
key = ok(create_api_key.sync_detailed(client=api, body=NewKey(name="CRM sync", scope=ScopeName.READ)), 201).data
assert key.key.startswith("hdk_")
actions = [e.action for e in ok(list_audit_log.sync_detailed(client=api, limit=50))]
assert "user.disable" in actions and "contacts.export" in actions, actions

ok(logout.sync_detailed(client=api))
try:
    get_me.sync_detailed(client=api)
except Exception as e:  # raise_on_unexpected_status: a 401 the document lists is parsed, not raised
    raise AssertionError(f"401 after logout is not in the document: {e}")
assert get_me.sync_detailed(client=api).status_code == 401
print("the generated client ran the README flow")
