from django.apps import AppConfig


class CohortsAppConfig(AppConfig):
    name = "cohorts_app"
    verbose_name = "Cohorts"
