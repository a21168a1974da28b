from django.contrib import admin

from users_app.admin import ProfileAdmin

from .models import MultiDeviceProfile


@admin.register(MultiDeviceProfile)
class MultiDeviceProfileAdmin(ProfileAdmin):
    pass
