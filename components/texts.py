"""The user-facing texts the plugin sends when no domain response can be: shared by the
channels and the actions (a module of its own, so a channel does not import the settings).
"""

# Sent when a turn cannot be handled and no domain response can be (the REST
# channel on an error, a failed action whose response is missing from the domain).
SERVICE_APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
