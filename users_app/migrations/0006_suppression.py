# Erasure on request: the suppression list, the import runs' suppressed count and the erase key scope.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('users_app', '0005_apikey_mask_pii_auditevent'),
    ]

    operations = [
        migrations.CreateModel(
            name='Suppression',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('cookie', 'Cookie'), ('email', 'Email'), ('phone', 'Phone')], max_length=6)),
                ('value_hash', models.CharField(help_text='HMAC-SHA256 (hex) of kind:value.', max_length=64)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'constraints': [models.UniqueConstraint(fields=('value_hash', 'kind'), name='suppression_unique_hash_kind')],
            },
        ),
        migrations.AddField(
            model_name='importrun',
            name='suppressed',
            field=models.PositiveIntegerField(default=0, help_text='Rows dropped, not stored: they hold an identifier of a person erased on request.'),
        ),
        migrations.AlterField(
            model_name='apikey',
            name='scope',
            field=models.CharField(choices=[('ingest', 'Ingest records'), ('read', 'Read personal data'), ('erase', 'Erase people on request')], max_length=6),
        ),
    ]
