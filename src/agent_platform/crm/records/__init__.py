"""CRM tasks and calls: the ones the platform created in Kommo and the tasks Kommo told us of.

endpoints.py (the REST API) → service.py → repository.py; the jobs (tasks.py) push tasks
and calls to Kommo (task_sync.py, call_sync.py, through push.py) and mirror Kommo's task
webhooks (mirror.py).
"""
