"""The web app: grid workers' pages, admins' console, Open311 API, resident simulator."""
