"""Notifications about tickets: to grid workers (WeCom group robot) and residents (WeChat).

outbox.py writes them in the transaction of the change they report; sender.py delivers
them from the web app, with retries; wecom.py is the group-robot client.
"""
