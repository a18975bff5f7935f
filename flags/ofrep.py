"""OpenFeature Remote Evaluation Protocol: /ofrep/v1/evaluate/flags[/{key}]."""

urlpatterns: list = []
